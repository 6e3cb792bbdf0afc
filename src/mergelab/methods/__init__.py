"""Merge methods: one file per method, registered on import (see ``_registry``)."""

from __future__ import annotations

from mergelab.methods import (  # noqa: F401  (importing a method module registers it)
    breadcrumbs,
    breadcrumbs_ties,
    dare_linear,
    dare_ties,
    della,
    della_linear,
    karcher,
    linear,
    model_stock,
    multislerp,
    nearswap,
    nuslerp,
    passthrough,
    sce,
    slerp,
    task_arithmetic,
    ties,
)
from mergelab.methods._registry import (
    REQUIRED,
    MergeMethod,
    Param,
    all_methods,
    get_method,
    merge_method,
)
from mergelab.methods.describe import describe_methods

__all__ = [
    "REQUIRED",
    "MergeMethod",
    "Param",
    "all_methods",
    "describe_methods",
    "get_method",
    "merge_method",
]
