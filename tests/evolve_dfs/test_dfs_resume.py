"""Resuming a DFS study: a real kill -9 mid-run, then the same command again."""

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
from dfs_helpers import MatchLogits, dfs_config, logits, stacked_by_hand
from study_journal import finished_calls, study_trials

from mergelab.errors import ConfigError
from mergelab.evolve import evolve

HERE = Path(__file__).resolve().parent
HELPERS = HERE.parent / "helpers"
TRIALS = 10


def test_resume_after_kill_9_keeps_every_finished_trial(
    models: dict[str, Path], tmp_path: Path
) -> None:
    folders = [models["a"], models["b"]]
    out = tmp_path / "run"
    code = (
        f"import sys; sys.path[:0] = [{str(HELPERS)!r}, {str(HERE)!r}]; "
        "from dfs_helpers import main; main()"
    )
    args = [json.dumps([str(f) for f in folders]), str(out), str(TRIALS)]
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while finished_calls(out) < 4:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "the search did not start in time"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    before = study_trials(out)
    done = {t.number: t.values for t in before if t.state == optuna.trial.TrialState.COMPLETE}
    running = [t.number for t in before if t.state == optuna.trial.TrialState.RUNNING]
    assert 3 <= len(done) < TRIALS
    assert len(running) <= 1

    target = logits(stacked_by_hand(folders, [(0, 0), (0, 1), (1, 1), (0, 2)]))
    config = dfs_config(folders, trials=TRIALS, scaling="none")
    result = evolve(config, out, evaluators={"match": MatchLogits(target)})
    after = {t.number: t for t in study_trials(out)}
    for number, values in done.items():
        assert after[number].values == values
    for number in running:
        assert "interrupted" in after[number].user_attrs
    counts = result.summary["trials"]
    assert (counts["counted"], counts["complete"]) == (TRIALS, TRIALS)
    assert counts["this_run"] == TRIALS - len(done)
    assert result.summary["chosen"]["fitness"]["match:score"] >= max(v[0] for v in done.values())
    # another DFS search on the same OUT_DIR is refused, naming what changed
    changed = {**config, "dfs": {**config["dfs"], "repeats": 3}}
    with pytest.raises(ConfigError, match=r"different config \(dfs differ\)"):
        evolve(changed, out, evaluators={"match": MatchLogits(target)})
