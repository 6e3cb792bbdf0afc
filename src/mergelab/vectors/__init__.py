"""Task vectors as first-class objects: extract, store compactly, apply, negate, analogy.

A task vector is ``tau = theta_ft - theta_base`` (Ilharco et al. 2023, "Editing Models with
Task Arithmetic", https://arxiv.org/abs/2212.04089). The artifact format is described in
:mod:`mergelab.vectors.format`, the user guide in ``docs/task-vectors.md``.
"""

from __future__ import annotations

from mergelab.vectors.apply import (
    ApplyResult,
    analogy,
    analogy_terms,
    apply_state_dict,
    apply_vectors,
    plan_apply,
)
from mergelab.vectors.artifact import TaskVector, is_vector
from mergelab.vectors.extract import ExtractResult, extract_lora, extract_vector, make_recipe
from mergelab.vectors.fingerprint import fingerprint
from mergelab.vectors.format import VectorMeta, VectorRecipe
from mergelab.vectors.store import StoreEntry, VectorStore
from mergelab.vectors.terms import Term, parse_term

__all__ = [
    "ApplyResult",
    "ExtractResult",
    "StoreEntry",
    "TaskVector",
    "Term",
    "VectorMeta",
    "VectorRecipe",
    "VectorStore",
    "analogy",
    "analogy_terms",
    "apply_state_dict",
    "apply_vectors",
    "extract_lora",
    "extract_vector",
    "fingerprint",
    "is_vector",
    "make_recipe",
    "parse_term",
    "plan_apply",
]
