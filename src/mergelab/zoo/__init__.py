"""The toy world: two dialects (and the mixture world's four languages), word-level
tokenizers, tasks and tiny trained Llama models.

``build_zoo(out)`` trains the whole zoo on a CPU in minutes (``mergelab zoo build``); the
models are real ``LlamaForCausalLM`` checkpoints that every mergelab feature treats like a
downloaded model. ``task_path(name)`` gives a zoo task's YAML file.
"""

from __future__ import annotations

from mergelab.zoo.build import ZooManifest, ZooModel, build_zoo
from mergelab.zoo.generate import Item, arith_item, parallel, read_item, story
from mergelab.zoo.language import J_HARD, E, J, Language, vocabulary
from mergelab.zoo.recipes import RECIPES, WORLD_VERSION, ZOO_MODELS, Recipe
from mergelab.zoo.tasks import TASK_DEFS, generate_tasks, task_path, write_tasks
from mergelab.zoo.tokenizer import build_tokenizer

__all__ = [
    "J_HARD",
    "RECIPES",
    "TASK_DEFS",
    "WORLD_VERSION",
    "ZOO_MODELS",
    "E",
    "Item",
    "J",
    "Language",
    "Recipe",
    "ZooManifest",
    "ZooModel",
    "arith_item",
    "build_tokenizer",
    "build_zoo",
    "generate_tasks",
    "parallel",
    "read_item",
    "story",
    "task_path",
    "vocabulary",
    "write_tasks",
]
