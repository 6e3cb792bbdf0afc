"""The in-memory path model and its export: folding identity, A's own path, KV cache.

References are independent of mergelab's DFS code: A loaded by transformers, and paths
stacked by hand from the safetensors files with the scales applied by forward hooks
(``dfs_helpers.stacked_by_hand``).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import torch
from dfs_helpers import FAMILIES, IDS, load_state, logits, save_family_model, stacked_by_hand
from transformers import AutoModelForCausalLM

from mergelab import merge
from mergelab.eval.generate import greedy_generate, prompt_batches
from mergelab.evolve.config import load_evolve_config
from mergelab.evolve.dfs.export import export_model, export_recipe
from mergelab.evolve.dfs.genome import DfsPath, Step
from mergelab.evolve.dfs.space import DfsSpace

FOLD_TOLERANCE = 1e-4  # the norms' epsilon and float32 rounding; logits are O(1)


def _space(models: list[Path], **dfs: Any) -> DfsSpace:
    config = {
        "space": "dfs",
        "dfs": {"models": [str(m) for m in models], **dfs},
        "objectives": [{"evaluator": "x"}],
    }
    return DfsSpace(load_evolve_config(config))


def _random_path(rng: random.Random, depths: list[int], length: int) -> DfsPath:
    """A's first layer, random layers of every model (repeats likely), A's last layer."""
    middle = [(m, rng.randrange(depths[m])) for m in rng.choices(range(len(depths)), k=length)]
    layers = [(0, 0), *middle, (0, depths[0] - 1)]
    steps = [Step(m, i, 1.0 if k == 0 else rng.uniform(0.3, 2.0), None) for k, (m, i) in
             enumerate(layers)]  # fmt: skip
    return DfsPath(tuple(steps))


def _layers(path: DfsPath) -> list[tuple[int, int]]:
    return [(s.model, s.layer) for s in path.steps]


def _scales(path: DfsPath) -> list[float]:
    return [s.scale for s in path.steps]


def test_a_own_path_with_unit_scales_is_a_exactly(models: dict[str, Path]) -> None:
    space = _space([models["a"], models["b"]])
    live = space.open_live(None)
    candidate = space.decode(space.initial_points()[0])
    a = AutoModelForCausalLM.from_pretrained(str(models["a"])).eval()
    assert torch.equal(logits(live.build(candidate)), logits(a))
    exported = export_model(candidate.recipe)  # the export is A, tensor for tensor
    a_state = load_state(models["a"])
    assert set(exported.state_dict()) == set(a_state)
    assert all(torch.equal(exported.state_dict()[k], v) for k, v in a_state.items())


@pytest.mark.parametrize("seed", range(4))
def test_folding_identity_on_random_paths_and_scales(models: dict[str, Path], seed: int) -> None:
    space = _space([models["a"], models["b"]])
    live = space.open_live(None)
    rng = random.Random(seed)
    path = _random_path(rng, [3, 3], length=rng.randint(2, 6))
    in_memory = logits(live.build_path(path))
    by_hand = logits(stacked_by_hand([models["a"], models["b"]], _layers(path), _scales(path)))
    assert torch.equal(in_memory, by_hand)
    exported = export_model(export_recipe(path, space.refs, 3))
    assert torch.allclose(logits(exported), in_memory, rtol=0, atol=FOLD_TOLERANCE)


def test_folding_with_a_layer_used_twice_and_carriers_at_both_ends(
    models: dict[str, Path],
) -> None:
    space = _space([models["a"], models["b"]], fix_ends=False)
    live = space.open_live(None)
    layers = [(1, 2), (0, 1), (1, 2), (1, 0)]  # starts and ends with B: A's carriers needed
    scales = [1.7, 0.4, 1.9, 0.6]
    path = DfsPath(tuple(Step(m, i, s, None) for (m, i), s in zip(layers, scales, strict=True)))
    recipe = export_recipe(path, space.refs, 3)
    assert len(recipe.slices or []) == len(layers) + 2
    in_memory = logits(live.build_path(path))
    by_hand = stacked_by_hand([models["a"], models["b"]], layers, _scales(path))
    assert torch.equal(in_memory, logits(by_hand))
    assert torch.allclose(logits(export_model(recipe)), in_memory, rtol=0, atol=FOLD_TOLERANCE)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_supported_family_folds(family: str, tmp_path: Path) -> None:
    folders = [save_family_model(tmp_path / n, s, family=family) for n, s in (("a", 5), ("b", 6))]
    space = _space(folders)
    live = space.open_live(None)
    a = AutoModelForCausalLM.from_pretrained(str(folders[0])).eval()
    assert torch.equal(logits(live.build(space.decode(space.initial_points()[0]))), logits(a))
    path = _random_path(random.Random(1), [3, 3], length=4)
    in_memory = logits(live.build_path(path))
    exported = export_model(export_recipe(path, space.refs, 3))
    assert torch.allclose(logits(exported), in_memory, rtol=0, atol=FOLD_TOLERANCE)


def test_the_written_recipe_re_merges_to_the_materialized_tensors(
    models: dict[str, Path], tmp_path: Path
) -> None:
    space = _space([models["a"], models["b"]], scaling="slot")
    rng = random.Random(3)
    candidate = space.decode({name: rng.random() for name in space.distributions()})
    space.materialize(candidate, tmp_path / "materialized")
    space.write_recipe(candidate, tmp_path / "recipe.yml")
    merge(tmp_path / "recipe.yml", tmp_path / "merged")
    first, second = load_state(tmp_path / "materialized"), load_state(tmp_path / "merged")
    assert set(first) == set(second)
    assert all(torch.equal(first[k], second[k]) for k in first)
    # a standard checkpoint: plain transformers loads it, and it computes the path
    standard = AutoModelForCausalLM.from_pretrained(str(tmp_path / "merged")).eval()
    live = space.open_live(None)
    path_logits = logits(live.build(candidate))
    assert torch.allclose(logits(standard), path_logits, rtol=0, atol=FOLD_TOLERANCE)


@torch.no_grad()
def _greedy_without_cache(model: torch.nn.Module, ids: torch.Tensor, steps: int) -> list[int]:
    tokens = ids.tolist()
    for _ in range(steps):
        out = model(input_ids=torch.tensor([tokens]), use_cache=False).logits
        tokens.append(int(out[0, -1].argmax()))
    return tokens[len(ids) :]


def test_generation_with_kv_cache_equals_generation_without(models: dict[str, Path]) -> None:
    space = _space([models["a"], models["b"]])
    live = space.open_live(None)
    layers = [(0, 0), (1, 1), (0, 1), (1, 1), (0, 1), (0, 2)]  # B.1 and A.1 used twice
    path = DfsPath(tuple(Step(m, i, 1.0 + 0.1 * k, None) for k, (m, i) in enumerate(layers)))
    model = live.build_path(path)
    prompts = [IDS[0, :5].tolist(), IDS[1, :3].tolist()]  # different lengths: left padding
    batches = prompt_batches(prompts, [[0, 1]], pad_id=0, device="cpu")
    with torch.no_grad():
        cached = greedy_generate(model, batches, max_new_tokens=8, eos_ids=set(), stop_ids=set())
    for i, prompt in enumerate(prompts):
        assert cached[i] == _greedy_without_cache(model, torch.tensor(prompt), 8)
