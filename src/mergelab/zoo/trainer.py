"""Train one zoo recipe into a Hugging Face model folder (runs inside a worker process).

The folder holds ``model.safetensors``, ``config.json``, ``generation_config.json`` and the
tokenizer files, so every mergelab feature (and ``transformers``) loads it like a model
downloaded from a hub.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from mergelab.zoo.data import batches, sample_mix
from mergelab.zoo.recipes import Recipe
from mergelab.zoo.tasks import task_prompts
from mergelab.zoo.tokenizer import build_tokenizer
from mergelab.zoo.train import Shape, new_model, param_groups, train


def model_seed(seed: int, name: str) -> int:
    """The training seed of model ``name`` in a zoo built with ``seed`` (31 bits)."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFF_FFFF


def train_recipe(recipe: Recipe, seed: int, work: Path) -> tuple[float, float]:
    """Train ``recipe`` (its parent already in ``work``) into ``work/<recipe.name>``.

    Returns (seconds, mean loss over the last 10% of steps).
    """
    torch.set_num_threads(1)
    start = time.perf_counter()
    tokenizer = build_tokenizer(recipe.world)
    vocab = tokenizer.get_vocab()
    s = model_seed(seed, recipe.name)
    model = new_model(Shape(vocab_size=len(vocab)), s)
    if recipe.parent is not None:
        model.load_state_dict(load_file(work / recipe.parent / "model.safetensors"))
    pairs = sample_mix(
        dict(recipe.mix), min(recipe.pool, recipe.steps * recipe.batch), s, task_prompts()
    )
    data = batches(pairs, vocab, recipe.batch, recipe.steps, s)
    groups = param_groups(model, recipe.parts, recipe.layer_lr, recipe.lr)
    loss = train(model, data, groups, weight_decay=recipe.weight_decay)
    model.save_pretrained(work / recipe.name)
    tokenizer.save_pretrained(work / recipe.name)
    return time.perf_counter() - start, loss
