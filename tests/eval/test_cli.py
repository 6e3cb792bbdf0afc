"""``mergelab eval``: the --json shape, the table, and one-line errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from mergelab.cli import main

ITEMS = [
    {"prompt": "tom has 3 apples . how many apples ?", "answer": "3"},
    {"prompt": "how many pens does ann have ?", "answer": "2"},
    {"prompt": "ann has 2 pens . how many pens ?", "answer": "2"},
]
ITEMS[1]["prompt"] = "ann has 2 pens . how many pens now ?"


@pytest.fixture
def task_path(write_task: Callable) -> Path:
    config = {"name": "toy", "type": "generate", "max_new_tokens": 5, "stop": ["."]}
    return write_task(config, {"fitness": ITEMS, "test": ITEMS[:2]})


def test_json_output_is_one_object(
    model_dir: Path, task_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["eval", str(model_dir), "--task", str(task_path), "--split", "test", "--json"])
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    result = json.loads(out)
    assert list(result) == ["model", "task", "split", "n", "metrics"]
    assert result["model"] == str(model_dir)
    assert (result["task"], result["split"], result["n"]) == ("toy", "test", 2)
    assert list(result["metrics"]) == ["strict", "lenient"]
    assert all(0.0 <= v <= 1.0 for v in result["metrics"].values())


def test_limit_and_batch_size(
    model_dir: Path, task_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(
        [
            "eval",
            str(model_dir),
            "-t",
            str(task_path),
            "--limit",
            "1",
            "-b",
            "1",
            "--threads",
            "1",
            "--json",
        ]
    )
    assert json.loads(capsys.readouterr().out)["n"] == 1


def test_table_output(model_dir: Path, task_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["eval", str(model_dir), "--task", str(task_path)])
    out = capsys.readouterr().out
    assert "toy (fitness, n=3)" in out
    assert "strict" in out
    assert "lenient" in out
    assert "scored in" in out


def test_not_a_model_is_one_line_error(
    tmp_path: Path, task_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["eval", str(tmp_path), "--task", str(task_path), "--json"])
    assert info.value.code == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no config.json" in captured.err
    assert captured.err.strip().count("\n") == 0


def test_unknown_split_fails_before_loading(
    model_dir: Path, task_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["eval", str(model_dir), "--task", str(task_path), "--split", "dev"])
    assert "available splits: fitness, test" in capsys.readouterr().err
