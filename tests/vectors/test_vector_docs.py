"""The examples of docs/task-vectors.md, run as written.

The fast test runs them on tiny stand-ins named like the zoo's models (every command that
needs no zoo task); the slow test runs all of them on the real zoo.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest
from tiny_models import finetune_of, random_state, save_model

from mergelab.cli import main

DOC = Path(__file__).resolve().parents[2] / "docs" / "task-vectors.md"
ZOO_NAMES = ("base", "j", "m1", "m2", "e-read", "j-read", "e-arith", "zap")


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(), flags=re.S)


def commands() -> list[list[str]]:
    lines = [line for block in _blocks("console") for line in block.splitlines()]
    return [shlex.split(line[2:])[1:] for line in lines if line.startswith("$ mergelab ")]


def _run_all(cwd: Path, *, with_tasks: bool) -> int:
    ran = 0
    for args in commands():
        if "--eval" in args and not with_tasks:
            continue
        code: int | str | None = 0
        try:
            main(["-q", *args])
        except SystemExit as exc:
            code = exc.code
        assert code in (0, None), f"`mergelab {' '.join(args)}` exited {code}"
        ran += 1
    for block in _blocks("python"):
        exec(compile(block, str(DOC), "exec"), {})  # our own documentation's example
    assert (cwd / "models" / "j+m1" / "config.json").is_file()
    assert (cwd / "reports" / "jm" / "analysis.json").is_file()
    return ran


def test_examples_run_on_tiny_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = random_state(0)
    save_model(tmp_path / "zoo" / "base", base)
    for i, name in enumerate(ZOO_NAMES[1:], start=1):
        save_model(tmp_path / "zoo" / name, finetune_of(base, i, scale=0.02))
    monkeypatch.chdir(tmp_path)
    ran = _run_all(tmp_path, with_tasks=False)
    assert ran >= 15
    assert (tmp_path / "adapters" / "m1-r8" / "adapter_config.json").is_file()
    assert not (tmp_path / "vector-store" / "math.tv").exists()  # removed by the last step


@pytest.mark.slow
def test_examples_run_on_the_zoo(
    zoo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    os.symlink(zoo_dir, tmp_path / "zoo")
    monkeypatch.chdir(tmp_path)
    assert _run_all(tmp_path, with_tasks=True) == len(commands())
    assert (tmp_path / "models" / "greedy-soup" / "mergelab_soup.json").is_file()
