"""Parallel trials: worker processes on this machine, and actors on a local Ray cluster."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import optuna
import pytest
import torch
from evolve_helpers import Distance, synthetic_config

from mergelab.errors import ConfigError
from mergelab.evolve import evolve
from mergelab.evolve.journal import JournalFile
from mergelab.evolve.storage import JOURNAL_FILE

HERE = Path(__file__).resolve().parent


def _trials(out: Path) -> list[optuna.trial.FrozenTrial]:
    storage = optuna.storages.JournalStorage(JournalFile(out / JOURNAL_FILE))
    return optuna.load_study(study_name="mergelab-evolve", storage=storage).get_trials()


def _pids(out: Path) -> set[int]:
    return {int(t.user_attrs["metrics"]["distance"]["pid"]) for t in _trials(out)}


@pytest.mark.slow  # spawns two processes that each import torch and load the sources
def test_two_worker_processes_share_the_trials(
    sources: dict[str, Path], target: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    result = evolve(
        synthetic_config(sources, trials=10),
        out,
        workers=2,
        evaluators={"distance": Distance(target, sleep=0.2)},
    )
    assert result.summary["trials"]["complete"] == 10
    pids = _pids(out)
    assert len(pids) == 2
    assert os.getpid() not in pids
    # the chosen trial's fitness is the study's best, whichever process ran it
    best = max(t.value for t in _trials(out) if t.value is not None)
    assert result.summary["chosen"]["fitness"]["distance:score"] == best


def test_unpicklable_evaluators_are_refused_for_workers(
    sources: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="cannot be sent to worker processes"):
        evolve(
            synthetic_config(sources, trials=2),
            tmp_path / "run",
            workers=2,
            evaluators={"distance": lambda model: 0.0},
        )


def test_address_needs_the_ray_backend(
    sources: dict[str, Path], target: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="--address is for --backend ray"):
        evolve(
            synthetic_config(sources, trials=2),
            tmp_path / "run",
            address="auto",
            evaluators={"distance": Distance(target)},
        )


@pytest.mark.slow  # starts a local Ray instance and two actors
@pytest.mark.skipif(
    importlib.util.find_spec("ray") is None,
    reason="Ray is not installed (pip install 'mergelab[ray]')",
)
def test_ray_backend_on_a_local_cluster(
    sources: dict[str, Path], target: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    import ray

    path = os.pathsep.join([str(HERE), str(HERE.parent / "helpers")])
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        runtime_env={"env_vars": {"PYTHONPATH": path}},
        log_to_driver=False,
    )
    try:
        out = tmp_path / "run"
        result = evolve(
            synthetic_config(sources, trials=8),
            out,
            backend="ray",
            workers=2,
            evaluators={"distance": Distance(target)},
        )
        assert ray.is_initialized()  # the backend leaves a cluster it did not start running
    finally:
        ray.shutdown()
    assert result.summary["trials"]["complete"] == 8
    pids = _pids(out)
    assert len(pids) == 2
    assert os.getpid() not in pids
