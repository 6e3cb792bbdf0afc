"""Quality checks on the toy zoo, at a budget that runs in minutes (the full 300-trial
numbers come from ``benchmarks/evolve_speed.py`` and are reported in docs/evolve.md).

A short search promises that the evolved J-arith model is at least as good on the
held-out test split as every source model; the chosen recipe, merged on disk, scores
exactly the fitness the search recorded; a two-objective search returns a non-dominated
front with a knee and test scores for every point. The full 300-trial per-layer search beats
the best hand merge of the demo by 0.10 or more, the issue's bar (docs/evolve.md has the
measured numbers; the hand merges depend on the zoo the machine trained, see "Toy world and
CPU" there).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mergelab import merge
from mergelab.eval import TaskEvaluator, load_model
from mergelab.evolve import evolve

pytestmark = pytest.mark.slow


def _config(zoo: Path, objectives: list[dict[str, Any]], trials: int) -> dict[str, Any]:
    return {
        "merge_method": "dare_ties",
        "base_model": str(zoo / "base"),
        "models": [str(zoo / "j"), str(zoo / "m1"), str(zoo / "m2")],
        "genome": {
            "granularity": "layer",
            "parameters": {"weight": [0.0, 1.0], "density": [0.1, 1.0]},
        },
        "objectives": objectives,
        "budget": {"trials": trials},
        "seed": 0,
    }


def test_evolved_j_arith_matches_or_beats_every_source(zoo_dir: Path, tmp_path: Path) -> None:
    objective = {"task": "j-arith", "metric": "strict", "limit": 100}
    out = tmp_path / "run"
    result = evolve(_config(zoo_dir, [objective], trials=40), out)
    summary = result.summary
    evolved = summary["chosen"]["test"]["j-arith/test"]["strict"]
    sources = {Path(r).name: m["j-arith/test"]["strict"] for r, m in summary["sources"].items()}
    assert set(sources) == {"base", "j", "m1", "m2"}
    assert evolved >= max(sources.values()), (evolved, sources)
    # the written recipe rebuilds the evaluated model: same fitness, scored from disk
    merge(out / "best_recipe.yml", tmp_path / "best")
    model, tokenizer = load_model(tmp_path / "best")
    fitness = TaskEvaluator("j-arith", tokenizer, split="fitness", limit=100)(model)["strict"]
    assert fitness == summary["chosen"]["fitness"]["j-arith:strict"]


def test_two_objectives_give_a_front_with_a_knee(zoo_dir: Path, tmp_path: Path) -> None:
    objectives = [
        {"task": "j-arith", "metric": "strict", "limit": 60},
        {"task": "j-read", "metric": "strict", "limit": 60},
    ]
    config = {**_config(zoo_dir, objectives, trials=40), "population": 10}
    out = tmp_path / "run"
    result = evolve(config, out)
    front = json.loads((out / "pareto.json").read_text())
    points = front["points"]
    assert points
    values = np.array(
        [[p["fitness"]["j-arith:strict"], p["fitness"]["j-read:strict"]] for p in points]
    )
    for v in values:  # no front point dominates another
        assert not np.any(np.all(values >= v, axis=1) & np.any(values > v, axis=1))
    assert 0 <= front["knee"] < len(points)
    assert all(set(p["test"]) == {"j-arith/test", "j-read/test"} for p in points)
    assert result.summary["chosen"]["trial"] == points[front["knee"]]["trial"]


def test_per_layer_search_beats_every_hand_merge(zoo_dir: Path, tmp_path: Path) -> None:
    """J-arith strict on the test split: 0.10 or more above the best demo hand merge, and
    at least twice every source; TIES+DARE per-layer genome, 300 trials, population 8."""
    from mergelab import merge_state_dict
    from mergelab.demo import hand_merges

    objective = {"task": "j-arith", "metric": "strict", "limit": 200}
    config = {**_config(zoo_dir, [objective], trials=300), "population": 8}
    summary = evolve(config, tmp_path / "run").summary
    evolved = summary["chosen"]["test"]["j-arith/test"]["strict"]
    # J trains layers 0, 1, 4, 5 and M1, M2 layers 1-4; none trains the embeddings or head
    untrained = [(m, g) for m in ("j", "m1", "m2") for g in ("embed", "head")]
    untrained += [("j", "layers.2"), ("j", "layers.3")]
    untrained += [(m, f"layers.{i}") for m in ("m1", "m2") for i in (0, 5)]
    expected = {f"{p}[{m}]@{g}" for m, g in untrained for p in ("weight", "density")}
    assert set(summary["chosen"]["fixed_genes"]) == expected
    model, tokenizer = load_model(zoo_dir / "base")
    test = TaskEvaluator("j-arith", tokenizer, split="test")
    hand = {}
    for name, recipe in hand_merges(zoo_dir).items():
        model.load_state_dict(merge_state_dict(recipe), strict=False)  # same shapes as base
        hand[name] = test(model)["strict"]
    sources = [m["j-arith/test"]["strict"] for m in summary["sources"].values()]
    print(f"\nevolved {evolved}; hand merges {hand}")
    assert evolved >= max(hand.values()) + 0.10, (evolved, hand)
    assert evolved >= 2 * max(sources), (evolved, sources)
    assert evolved > max(sources), (evolved, sources)
