"""Failing trials are recorded with their error and the search goes on; a streak stops it."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import torch
from evolve_helpers import Distance, synthetic_config

from mergelab.errors import SearchError
from mergelab.evolve import evolve
from mergelab.evolve.journal import JournalFile
from mergelab.evolve.storage import JOURNAL_FILE

FAIL = optuna.trial.TrialState.FAIL
COMPLETE = optuna.trial.TrialState.COMPLETE


def _trials(out: Path) -> list[optuna.trial.FrozenTrial]:
    storage = optuna.storages.JournalStorage(JournalFile(out / JOURNAL_FILE))
    return optuna.load_study(study_name="mergelab-evolve", storage=storage).get_trials()


def test_evaluator_exceptions_fail_their_trial_only(
    sources: dict[str, Path], target: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    result = evolve(
        synthetic_config(sources, trials=15),
        tmp_path / "run",
        evaluators={"distance": Distance(target, fail_every=3)},
    )
    trials = _trials(tmp_path / "run")
    failed = [t for t in trials if t.state == FAIL]
    assert [t.number for t in failed] == [2, 5, 8, 11, 14]
    assert all("RuntimeError: flaky evaluator failed" in t.user_attrs["error"] for t in failed)
    assert sum(t.state == COMPLETE for t in trials) == 10
    counts = result.summary["trials"]
    assert (counts["counted"], counts["complete"], counts["failed"]) == (15, 10, 5)


def test_nan_scores_fail_their_trial(
    sources: dict[str, Path], target: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    evolve(
        synthetic_config(sources, trials=8),
        tmp_path / "run",
        evaluators={"distance": Distance(target, nan_every=4)},
    )
    failed = [t for t in _trials(tmp_path / "run") if t.state == FAIL]
    assert [t.number for t in failed] == [3, 7]
    assert all("scored nan" in t.user_attrs["error"] for t in failed)


def test_merge_errors_fail_their_trial(sources: dict[str, Path], tmp_path: Path) -> None:
    # della needs 0 < density - epsilon and density + epsilon < 1 (or density >= 1)
    config = synthetic_config(
        sources,
        trials=16,
        sampler="tpe",
        max_consecutive_failures=20,
        merge_method="della",
        genome={"granularity": "global", "parameters": {"density": [0.2, 1.0]}},
        parameters={"weight": 0.5, "epsilon": 0.3},
    )
    evolve(config, tmp_path / "run", evaluators={"distance": lambda model: 0.0})
    trials = _trials(tmp_path / "run")
    assert len(trials) == 16
    for t in trials:
        densities = [round(0.2 + 0.8 * x, 6) for x in t.params.values()]
        mergeable = all(d >= 1.0 or (d - 0.3 > 0 and d + 0.3 < 1) for d in densities)
        assert t.state == (COMPLETE if mergeable else FAIL), t.params
        if not mergeable:
            assert "ConfigError: della needs" in t.user_attrs["error"]
    assert any(t.state == FAIL for t in trials)
    assert any(t.state == COMPLETE for t in trials)


def test_a_streak_of_failures_stops_the_search(
    sources: dict[str, Path], target: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    with pytest.raises(SearchError, match=r"4 trials failed in a row, the last with: RuntimeError"):
        evolve(
            synthetic_config(sources, trials=50, max_consecutive_failures=4),
            tmp_path / "run",
            evaluators={"distance": Distance(target, fail_every=1)},
        )
    trials = _trials(tmp_path / "run")
    assert len(trials) == 4
    assert all(t.state == FAIL and "error" in t.user_attrs for t in trials)


def test_ctrl_c_keeps_finished_trials_and_fails_the_running_one(
    sources: dict[str, Path], target: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        evolve(
            synthetic_config(sources, trials=6),
            out,
            evaluators={"distance": Distance(target, interrupt_at=3)},
        )
    trials = _trials(out)
    assert [t.state for t in trials] == [COMPLETE, COMPLETE, FAIL]
    assert "interrupted" in trials[2].user_attrs
    result = evolve(
        synthetic_config(sources, trials=6), out, evaluators={"distance": Distance(target)}
    )
    counts = result.summary["trials"]
    assert (counts["counted"], counts["interrupted"], counts["this_run"]) == (6, 1, 4)
