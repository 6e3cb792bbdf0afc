"""The in-memory trial: the live model equals the on-disk merge of the written recipe."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
import torch
from evolve_helpers import load_state, synthetic_config

from mergelab import merge
from mergelab.checkpoint import Checkpoint
from mergelab.evolve.cached_source import CachedSource
from mergelab.evolve.config import load_evolve_config
from mergelab.evolve.parameter_space import ParameterSpace


def _space(sources: dict[str, Path], method: str, granularity: str) -> ParameterSpace:
    genome = {"granularity": granularity, "parameters": {"weight": [0.0, 1.0]}}
    if method in ("ties", "dare_ties", "della"):
        # della needs density + epsilon < 1
        genome["parameters"]["density"] = [0.2, 0.9 if method == "della" else 1.0]
    fixed = {"epsilon": 0.05} if method == "della" else {}
    return ParameterSpace(
        load_evolve_config(
            synthetic_config(sources, merge_method=method, genome=genome, parameters=fixed, seed=3)
        )
    )


@pytest.mark.parametrize(
    ("method", "granularity"),
    [
        ("dare_ties", "layer"),
        ("ties", "group:2"),
        ("task_arithmetic", "global"),
        ("della", "layer"),
    ],
)
def test_live_model_equals_the_merge_of_the_written_recipe(
    sources: dict[str, Path], tmp_path: Path, method: str, granularity: str
) -> None:
    space = _space(sources, method, granularity)
    live = space.open_live(None)
    rng = random.Random(7)
    for trial in range(2):
        params = {name: rng.random() for name in space.distributions()}
        candidate = space.decode(params)
        model = live.build(candidate)
        recipe = tmp_path / f"{trial}.yml"
        space.write_recipe(candidate, recipe)
        merge(recipe, tmp_path / f"merged-{trial}")
        on_disk = load_state(tmp_path / f"merged-{trial}")
        in_memory = model.state_dict()
        assert set(on_disk) == set(in_memory)
        for name, tensor in on_disk.items():
            assert torch.equal(in_memory[name], tensor), name


def test_a_second_candidate_replaces_every_tensor(sources: dict[str, Path]) -> None:
    space = _space(sources, "dare_ties", "layer")
    live = space.open_live(None)
    genes = list(space.distributions())
    low_model = live.build(space.decode(dict.fromkeys(genes, 0.0)))
    low = {k: v.clone() for k, v in low_model.state_dict().items()}
    live.build(space.decode(dict.fromkeys(genes, 1.0)))
    base = load_state(sources["base"])
    high = live.model.state_dict()
    # weight 0 everywhere is the base itself; weight 1 moves every tensor the models changed
    for name, tensor in base.items():
        assert torch.equal(low[name], tensor), name
        assert not torch.equal(high[name], tensor), name


def test_trials_read_no_file_after_loading(sources: dict[str, Path], tmp_path: Path) -> None:
    copies = {k: Path(shutil.copytree(v, tmp_path / k)) for k, v in sources.items()}
    space = _space(copies, "dare_ties", "layer")
    live = space.open_live(None)
    params = dict.fromkeys(space.distributions(), 0.4)
    before = {k: v.clone() for k, v in live.build(space.decode(params)).state_dict().items()}
    for folder in copies.values():
        for file in folder.glob("*.safetensors"):
            file.unlink()
    after = live.build(space.decode(params)).state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_cached_source_upcasts_once_and_returns_the_same_tensor(sources: dict[str, Path]) -> None:
    with Checkpoint.open(sources["a"]) as ckpt:
        cached = CachedSource(ckpt)
        name = next(iter(cached.tensors))
        first = cached.read(name)
        assert first.dtype == torch.float32
        assert cached.read(name) is first
        assert torch.equal(first, ckpt.read(name).float())
        cached.preload()
        assert cached.nbytes == sum(i.numel * 4 for i in ckpt.tensors.values())
