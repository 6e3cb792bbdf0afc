"""Genes that cannot change the merge do not evolve: sources equal to the base in a group.

The claim behind it is checked by merging: recipes that differ only in the fixed genes'
values give the very same tensors, while an evolved gene of the same group changes them.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import torch
from tiny_models import finetune_of, random_state, save_model

from mergelab import merge_state_dict
from mergelab.evolve.config import load_evolve_config
from mergelab.evolve.parameter_space import ParameterSpace
from mergelab.methods import get_method

LAYERS = 3


def _partial(base: dict[str, torch.Tensor], seed: int, layers: set[int]) -> dict[str, torch.Tensor]:
    """A fine-tune of ``base`` that changed only the tensors of ``layers``."""
    tuned = finetune_of(base, seed, scale=0.1)
    return {
        name: tuned[name] if any(f"layers.{i}." in name for i in layers) else t.clone()
        for name, t in base.items()
    }


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """base; ``a`` changed layers 0-2, ``b`` layers 0 and 2: both leave embed and head alone."""
    root = tmp_path_factory.mktemp("base-copies")
    base = random_state(3, layers=LAYERS)
    states = {"base": base, "a": _partial(base, 1, {0, 1, 2}), "b": _partial(base, 2, {0, 2})}
    return {k: save_model(root / k, v, layers=LAYERS) for k, v in states.items()}


def _space(models: dict[str, Path], method: str, **parameters: Any) -> ParameterSpace:
    genes = {"weight": [0.0, 1.0]}
    if get_method(method).param("density") is not None:
        genes["density"] = [0.1, 1.0]
    config = {
        "merge_method": method,
        "base_model": str(models["base"]),
        "models": [str(models["a"]), str(models["b"])],
        "genome": {"granularity": "layer", "parameters": genes},
        "objectives": [{"task": "j-arith"}],
        "parameters": parameters,
        "seed": 0,
    }
    return ParameterSpace(load_evolve_config(config))


def _merge(space: ParameterSpace, values: dict[str, float]) -> dict[str, torch.Tensor]:
    return merge_state_dict(space.genome.recipe(values))


def _random_values(space: ParameterSpace, rng: random.Random) -> dict[str, float]:
    return {g.name: g.value(rng.random()) for g in space.genome.genes}


def _fixed(space: ParameterSpace) -> set[str]:
    return {g.name for g in space.genome.genes if not g.evolves}


def test_dare_ties_fixes_the_genes_of_untouched_groups_and_base_copies(
    models: dict[str, Path],
) -> None:
    space = _space(models, "dare_ties")
    untouched = {
        f"{p}[{m}]@{g}" for p in ("weight", "density") for m in "ab" for g in ("embed", "head")
    }
    copies = {"weight[b]@layers.1", "density[b]@layers.1"}
    assert _fixed(space) == untouched | copies
    assert set(space.distributions()) == {g.name for g in space.genome.genes} - _fixed(space)
    rng = random.Random(0)
    values = _random_values(space, rng)
    reference = _merge(space, values)
    for _ in range(3):  # other values of the fixed genes: the same tensors, bit for bit
        moved = {
            **values,
            **{n: v for n, v in _random_values(space, rng).items() if n in _fixed(space)},
        }
        merged = _merge(space, moved)
        assert all(torch.equal(merged[k], reference[k]) for k in reference)
    # an evolved gene of the same layer does change it
    moved = {**values, "weight[a]@layers.1": 1.0 - values["weight[a]@layers.1"]}
    changed = _merge(space, moved)
    assert not torch.equal(
        changed["model.layers.1.mlp.up_proj.weight"], reference["model.layers.1.mlp.up_proj.weight"]
    )


def test_normalized_sum_keeps_evolving_the_weight_of_a_base_copy(models: dict[str, Path]) -> None:
    """task_arithmetic with normalize divides by every weight: b's weight still matters."""
    space = _space(models, "task_arithmetic", normalize=True)
    assert "weight[b]@layers.1" not in _fixed(space)
    assert "density[b]@layers.1" in _fixed(space)
    values = _random_values(space, random.Random(1))
    name = "model.layers.1.mlp.up_proj.weight"
    moved = {**values, "weight[b]@layers.1": 1.0 - values["weight[b]@layers.1"]}
    assert not torch.equal(_merge(space, values)[name], _merge(space, moved)[name])
    without = _space(models, "task_arithmetic")  # normalize false: b adds nothing there
    assert "weight[b]@layers.1" in _fixed(without)


def test_methods_outside_the_task_arithmetic_family_evolve_every_gene(
    models: dict[str, Path],
) -> None:
    space = _space(models, "linear")
    assert _fixed(space) == set()
    assert len(space.distributions()) == len(space.genome.genes)
