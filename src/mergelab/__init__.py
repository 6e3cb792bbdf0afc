"""mergelab: build new language models from existing ones without training.

The public API: merge recipes (``merge``, ``merge_state_dict``, ``plan_merge``), recipes
(``Recipe``, ``load_recipe``), the merge-method registry and the typed errors.
"""

from __future__ import annotations

from mergelab.errors import MergelabError
from mergelab.merge import MergeResult, merge, merge_state_dict, plan_merge
from mergelab.methods import all_methods, get_method, merge_method
from mergelab.recipe import Recipe, load_recipe

__version__ = "0.1.0"

__all__ = [
    "MergeResult",
    "MergelabError",
    "Recipe",
    "__version__",
    "all_methods",
    "get_method",
    "load_recipe",
    "merge",
    "merge_method",
    "merge_state_dict",
    "plan_merge",
]
