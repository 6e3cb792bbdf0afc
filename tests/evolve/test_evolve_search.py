"""Optimiser wiring on synthetic objectives with known optima, and the files a search writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
import yaml
from evolve_helpers import NAMES, TARGET, Distance, load_state, synthetic_config, target_state

from mergelab import merge
from mergelab.evolve import evolve
from mergelab.evolve.journal import JournalFile
from mergelab.evolve.storage import JOURNAL_FILE


def _weights(recipe: Path) -> list[float]:
    data = yaml.safe_load(recipe.read_text())
    return [m["parameters"]["weight"] for m in data["models"]]


def _study(out: Path) -> optuna.Study:
    storage = optuna.storages.JournalStorage(JournalFile(out / JOURNAL_FILE))
    return optuna.load_study(study_name="mergelab-evolve", storage=storage)


def test_cmaes_finds_the_known_optimum(
    sources: dict[str, Path], target: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    result = evolve(
        synthetic_config(sources, trials=60),
        out,
        evaluators={"distance": Distance(target)},
    )
    found = _weights(out / "best_recipe.yml")
    assert found == pytest.approx(list(TARGET), abs=0.05)
    study = _study(out)
    trials = study.get_trials()
    assert len(trials) == 60
    assert trials[0].params == dict.fromkeys(trials[0].params, 0.5)  # the paper's mean first
    assert any(k.startswith("cma:") for t in trials for k in t.system_attrs)  # CMA-ES ran
    assert result.summary["chosen"]["fitness"]["distance:score"] == pytest.approx(study.best_value)
    assert result.summary["trials"]["counted"] == 60


def test_best_recipe_merged_on_disk_has_the_best_fitness(
    sources: dict[str, Path], target: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    result = evolve(
        synthetic_config(sources, trials=12),
        out,
        evaluators={"distance": Distance(target)},
        save_best=True,
    )
    merge(out / "best_recipe.yml", tmp_path / "again")
    for folder in (tmp_path / "again", out / "best_model"):
        state = load_state(folder)
        distance = sum(float(((state[k] - v) ** 2).sum()) for k, v in target.items())
        assert -distance == pytest.approx(result.summary["chosen"]["fitness"]["distance:score"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["chosen"]["recipe"] == "best_recipe.yml"
    assert summary["chosen"]["model"] == "best_model"
    assert sorted(summary["plots"]) == ["plots/genome.png", "plots/history.png"]
    assert all((out / p).stat().st_size > 1000 for p in summary["plots"])


def _nondominated(values: np.ndarray) -> np.ndarray:
    """Rows no other row beats in both columns (maximisation), by brute force."""
    keep = []
    for v in values:
        beaten = np.any(np.all(values >= v, axis=1) & np.any(values > v, axis=1))
        keep.append(not beaten)
    return np.asarray(keep)


def test_nsga2_front_and_knee(sources: dict[str, Path], tmp_path: Path) -> None:
    other = (0.9, 0.1, 0.2)
    config = synthetic_config(sources, trials=80, population=12)
    config["objectives"] = [
        {"evaluator": "near_a", "metric": "score", "name": "a"},
        {"evaluator": "near_b", "metric": "score", "name": "b"},
    ]
    out = tmp_path / "run"
    result = evolve(
        config,
        out,
        evaluators={
            "near_a": Distance(target_state(sources, TARGET)),
            "near_b": Distance(target_state(sources, other)),
        },
    )
    front = json.loads((out / "pareto.json").read_text())
    assert len(front["points"]) >= 5
    study = _study(out)
    complete = [t for t in study.get_trials() if t.state == optuna.trial.TrialState.COMPLETE]
    values = np.array([t.values for t in complete])
    best = {t.number for t, keep in zip(complete, _nondominated(values), strict=True) if keep}
    assert {p["trial"] for p in front["points"]} <= best
    knee = front["points"][front["knee"]]
    assert (out / knee["recipe"]).read_text() == (out / "chosen_recipe.yml").read_text()
    assert result.summary["chosen"]["trial"] == knee["trial"]
    assert (out / "plots" / "pareto.png").is_file()
    # the knee is a compromise: strictly inside both extremes
    fitness = np.array([[p["fitness"]["a"], p["fitness"]["b"]] for p in front["points"]])
    k = front["knee"]
    assert fitness[k, 0] < fitness[:, 0].max()
    assert fitness[k, 1] < fitness[:, 1].max()


def test_tpe_sampler_runs_and_records_every_trial(
    sources: dict[str, Path], target: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    evolve(
        synthetic_config(sources, trials=15, sampler="tpe"),
        out,
        evaluators={"distance": Distance(target)},
    )
    study = _study(out)
    unit = optuna.distributions.FloatDistribution(0.0, 1.0)
    assert all(d == unit for t in study.trials for d in t.distributions.values())
    assert len(study.trials) == 15
    assert all(set(t.params) == {f"weight[{n}]" for n in NAMES} for t in study.trials)


def test_time_budget_stops_the_run(
    sources: dict[str, Path], target: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    result = evolve(
        synthetic_config(sources, trials=10_000),
        tmp_path / "run",
        seconds=1.0,
        evaluators={"distance": Distance(target, sleep=0.1)},
    )
    trials = result.summary["trials"]
    assert trials["stopped_by"] == "time"
    assert 1 <= trials["counted"] <= 12
