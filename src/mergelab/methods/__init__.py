"""Merge methods: one file per method, registered on import (see ``_registry``)."""

from __future__ import annotations

from mergelab.methods._registry import (
    REQUIRED,
    MergeMethod,
    Param,
    all_methods,
    get_method,
    merge_method,
)

__all__ = ["REQUIRED", "MergeMethod", "Param", "all_methods", "get_method", "merge_method"]
