"""Resuming: a real kill -9 mid-run, config changes refused, SQLite storage, journal format."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch
from evolve_helpers import Distance, synthetic_config
from study_journal import finished_calls, study_trials

from mergelab.errors import ConfigError
from mergelab.evolve import evolve
from mergelab.evolve.journal import JournalFile
from mergelab.evolve.storage import JOURNAL_FILE

HERE = Path(__file__).resolve().parent
HELPERS = HERE.parent / "helpers"
COMPLETE = optuna.trial.TrialState.COMPLETE
RUNNING = optuna.trial.TrialState.RUNNING
FAIL = optuna.trial.TrialState.FAIL


def test_resume_after_kill_9_keeps_every_finished_trial(
    sources: dict[str, Path], target: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    code = (
        f"import sys; sys.path[:0] = [{str(HELPERS)!r}, {str(HERE)!r}]; "
        "from evolve_helpers import main; main()"
    )
    args = [json.dumps({k: str(v) for k, v in sources.items()}), str(out), "40"]
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while finished_calls(out) < 8:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "the search did not start in time"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    before = study_trials(out)
    done = {t.number: t.values for t in before if t.state == COMPLETE}
    running = [t.number for t in before if t.state == RUNNING]
    assert 7 <= len(done) < 40  # the 8th evaluation may not have been told yet
    assert len(running) <= 1

    result = evolve(
        synthetic_config(sources, trials=40),
        out,
        evaluators={"distance": Distance(target)},
    )
    after = {t.number: t for t in study_trials(out)}
    for number, values in done.items():  # finished trials are kept as they were
        assert after[number].state == COMPLETE
        assert after[number].values == values
    for number in running:  # the trial the kill cut short is failed, marked, not counted
        assert after[number].state == FAIL
        assert "interrupted" in after[number].user_attrs
        assert "error" not in after[number].user_attrs
    counts = result.summary["trials"]
    assert counts["counted"] == 40
    assert counts["complete"] == 40
    assert counts["interrupted"] == len(running)
    assert counts["this_run"] == 40 - len(done)
    best_before = max(v[0] for v in done.values())
    assert result.summary["chosen"]["fitness"]["distance:score"] >= best_before


def test_a_different_config_is_refused_a_bigger_budget_resumes(
    sources: dict[str, Path], target: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    evaluators = {"distance": Distance(target)}
    evolve(synthetic_config(sources, trials=3), out, evaluators=evaluators)
    with pytest.raises(ConfigError, match=r"different config \(seed differ\)"):
        evolve(synthetic_config(sources, trials=3, seed=1), out, evaluators=evaluators)
    with pytest.raises(ConfigError, match=r"genome differ"):
        evolve(synthetic_config(sources, trials=3, granularity="layer"), out, evaluators=evaluators)
    result = evolve(synthetic_config(sources, trials=5), out, evaluators=evaluators)
    assert result.summary["trials"]["counted"] == 5
    assert result.summary["trials"]["this_run"] == 2
    assert len(study_trials(out)) == 5


def test_sqlite_storage_is_shared_across_runs(
    sources: dict[str, Path], target: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    evaluators = {"distance": Distance(target)}
    evolve(
        synthetic_config(sources, trials=4), tmp_path / "one", storage=url, evaluators=evaluators
    )
    result = evolve(
        synthetic_config(sources, trials=7), tmp_path / "two", storage=url, evaluators=evaluators
    )
    assert result.summary["trials"]["this_run"] == 3
    study = optuna.load_study(study_name="mergelab-evolve", storage=url)
    assert sum(t.state == COMPLETE for t in study.trials) == 7
    assert not (tmp_path / "two" / JOURNAL_FILE).exists()


def test_the_journal_opens_with_optunas_own_file_backend(
    sources: dict[str, Path], target: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    evolve(synthetic_config(sources, trials=5), out, evaluators={"distance": Distance(target)})
    backend = optuna.storages.journal.JournalFileBackend(str(out / JOURNAL_FILE))
    study = optuna.load_study(
        study_name="mergelab-evolve", storage=optuna.storages.JournalStorage(backend)
    )
    ours = study_trials(out)
    assert [t.values for t in study.trials] == [t.values for t in ours]
    assert [t.params for t in study.trials] == [t.params for t in ours]


def test_a_torn_last_record_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / JOURNAL_FILE
    path.write_bytes(b'{"op_code": 0}\n{"op_co')
    JournalFile(path)
    assert path.read_bytes() == b'{"op_code": 0}\n'


def test_out_dir_inside_a_source_is_refused(
    sources: dict[str, Path], target: dict[str, torch.Tensor]
) -> None:
    from mergelab.errors import OutputError

    with pytest.raises(OutputError, match="inside the input model"):
        evolve(
            synthetic_config(sources, trials=2),
            sources["a"] / "search",
            evaluators={"distance": Distance(target)},
        )
