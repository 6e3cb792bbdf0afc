"""DFS searches end to end: the wiring finds a known path; outputs; several objectives; PS+DFS."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import torch
from dfs_helpers import MatchLogits, dfs_config, load_state, logits, stacked_by_hand

from mergelab import merge
from mergelab.evolve import evolve
from mergelab.evolve.config import load_evolve_config
from mergelab.evolve.journal import JournalFile
from mergelab.evolve.storage import JOURNAL_FILE
from mergelab.evolve.trial import TrialRunner, WorkerSpec

TARGET = [(0, 0), (0, 1), (1, 1), (0, 2)]  # A.0, A.1, B.1, A.2: in slot order


@pytest.fixture(scope="module")
def target(models: dict[str, Path]) -> torch.Tensor:
    return logits(stacked_by_hand([models["a"], models["b"]], TARGET))


def test_a_short_search_finds_a_known_path(
    models: dict[str, Path], target: torch.Tensor, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    # one slot away from A's path, but a needle (a slot's gene has no gradient until it flips):
    # with seeds 0-7 this finds it after 2 to 57 trials
    config = dfs_config([models["a"], models["b"]], trials=80, repeats=1, scaling="none")
    config["population"] = 16
    result = evolve(config, out, evaluators={"match": MatchLogits(target)}, save_best=True)
    chosen = result.summary["chosen"]
    assert chosen["fitness"]["match:score"] == 0.0
    assert chosen["path"] == ["a.0", "a.1", "b.1", "a.2"]
    assert chosen["export_max_logit_diff"] < 1e-4
    assert result.summary["space"] == "dfs"
    storage = optuna.storages.JournalStorage(JournalFile(out / JOURNAL_FILE))
    trials = optuna.load_study(study_name="mergelab-evolve", storage=storage).trials
    assert trials[0].params == dict.fromkeys(trials[0].params, 0.5)  # A's own path first
    assert any(k.startswith("cma:") for t in trials for k in t.system_attrs)  # CMA-ES ran
    # the recipe and the saved model are the path as a standard checkpoint
    merge(out / "best_recipe.yml", tmp_path / "again")
    saved, again = load_state(out / "best_model"), load_state(tmp_path / "again")
    assert all(torch.equal(saved[k], again[k]) for k in saved)
    assert sorted(result.summary["plots"]) == ["plots/history.png", "plots/path.png"]
    assert (out / "plots" / "path.png").stat().st_size > 1000


def test_matrix_scaling_search_runs_and_reports(
    models: dict[str, Path], target: torch.Tensor, tmp_path: Path
) -> None:
    result = evolve(
        dfs_config([models["a"], models["b"]], trials=6),
        tmp_path / "run",
        evaluators={"match": MatchLogits(target)},
    )
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary == result.summary
    assert summary["trials"]["complete"] == 6
    assert summary["chosen"]["export_max_logit_diff"] < 1e-4
    path = summary["chosen"]["path"]  # fixed ends; the last step carries W's scale
    assert path[0] == "a.0"
    assert path[-1].startswith("a.2")


def test_two_objectives_give_a_pareto_front_of_paths(
    models: dict[str, Path], target: torch.Tensor, tmp_path: Path
) -> None:
    config = dfs_config([models["a"], models["b"]], trials=8, scaling="slot")
    config["objectives"] = [
        {"evaluator": "match", "metric": "score", "name": "close"},
        {"evaluator": "match", "metric": "pid", "name": "pid", "direction": "minimize"},
    ]
    out = tmp_path / "run"
    result = evolve(config, out, evaluators={"match": MatchLogits(target)})
    assert result.summary["trials"]["complete"] == 8
    front = json.loads((out / "pareto.json").read_text())
    assert front["points"]
    assert (out / "chosen_recipe.yml").is_file()
    assert "path" in result.summary["chosen"]


def test_ps_then_dfs_runs_both_stages_and_resumes(
    models: dict[str, Path], target: torch.Tensor, tmp_path: Path
) -> None:
    config = {
        "space": "ps+dfs",
        "merge_method": "linear",
        "models": [str(models["a"]), str(models["b"])],
        "genome": {"granularity": "global", "parameters": {"weight": [0.0, 1.0]}},
        "dfs": {"models": [str(models["b"])], "repeats": 1, "scaling": "slot"},
        "objectives": [{"evaluator": "match", "metric": "score"}],
        "budget": {"trials": 4},
        "seed": 0,
    }
    out = tmp_path / "run"
    evaluators = {"match": MatchLogits(target)}
    result = evolve(config, out, evaluators=evaluators)
    summary = json.loads((out / "summary.json").read_text())
    assert summary == result.summary
    ps, dfs = summary["stages"]["ps"], summary["stages"]["dfs"]
    assert (ps["space"], ps["dir"], dfs["space"], dfs["dir"]) == ("ps", "ps", "dfs", "dfs")
    assert ps["trials"]["complete"] == dfs["trials"]["complete"] == 4
    for stage in ("ps", "dfs"):  # each stage folder holds its own config, as run
        assert load_evolve_config(out / stage / "evolve_config.yml").space == stage
    # the DFS stage searches over (the PS model, B); the PS model is on disk
    ps_best = load_state(out / "ps_best")
    merge(out / "ps" / "best_recipe.yml", tmp_path / "ps-again")
    assert all(torch.equal(ps_best[k], v) for k, v in load_state(tmp_path / "ps-again").items())
    assert dfs["chosen"]["path"][0].startswith("ps_best.")
    assert summary["chosen"]["recipe"] == "dfs/best_recipe.yml"
    assert result.chosen_recipe == out / "dfs" / "best_recipe.yml"
    # a rerun resumes both stages: nothing left to do, the PS model is kept
    stamp = (out / "ps_best").stat().st_mtime_ns
    again = evolve(config, out, evaluators=evaluators)
    assert [again.summary["stages"][s]["trials"]["this_run"] for s in ("ps", "dfs")] == [0, 0]
    assert (out / "ps_best").stat().st_mtime_ns == stamp


def test_a_trial_with_an_empty_path_fails_with_the_reason(
    models: dict[str, Path], target: torch.Tensor
) -> None:
    config = load_evolve_config(dfs_config([models["a"]], fix_ends=False, scaling="none"))
    runner = TrialRunner.open(WorkerSpec(config, {"match": MatchLogits(target)}))
    everything_off = dict.fromkeys(runner.space.distributions(), 0.0)
    outcome = runner.run(everything_off)
    assert outcome.values is None
    assert "path is empty (no slot is on) and was rejected" in str(outcome.error)
    assert runner.run(runner.space.initial_points()[0]).values is not None
