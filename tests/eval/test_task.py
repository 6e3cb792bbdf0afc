"""Task files: loading by path and by zoo name, validation, and the error messages."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mergelab.errors import TaskError
from mergelab.eval import load_task
from mergelab.eval import task as task_module

GENERATE = {"name": "arith", "type": "generate", "max_new_tokens": 8, "stop": ["."]}
ITEMS = [{"prompt": "q a1 ?", "answer": "3"}, {"prompt": "q a2 ?", "answer": 4}]


def test_load_by_path_reads_items_and_converts_int_answers(write_task: Callable) -> None:
    path = write_task(GENERATE, {"fitness": ITEMS, "test": ITEMS[:1]})
    task = load_task(path)
    assert task.name == "arith"
    assert task.items("fitness") == [
        {"prompt": "q a1 ?", "answer": "3"},
        {"prompt": "q a2 ?", "answer": "4"},
    ]
    assert len(task.items("test")) == 1
    assert task.metric_names == ["strict", "lenient"]
    assert task.new_tokens == 8


def test_items_are_copies(write_task: Callable) -> None:
    task = load_task(write_task(GENERATE, {"fitness": ITEMS}))
    task.items("fitness")[0]["prompt"] = "changed"
    assert task.items("fitness")[0]["prompt"] == "q a1 ?"


def test_metric_names_follow_patterns_and_primary_metric(write_task: Callable) -> None:
    config = {
        **GENERATE,
        "format_pattern": r"^ga \d+ desu \.$",
        "forbidden_pattern": r"\bzap\b",
        "primary_metric": "lenient",
    }
    task = load_task(write_task(config, {"fitness": ITEMS}))
    assert task.metric_names == ["lenient", "strict", "format", "forbidden_rate"]
    assert task.primary == "lenient"


def test_zoo_name_resolves_in_zoo_tasks_dir(
    tmp_path: Path, write_task: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_task(GENERATE, {"fitness": ITEMS})
    monkeypatch.setattr(task_module, "ZOO_TASKS_DIR", tmp_path)
    assert load_task("arith").items("fitness")[1]["answer"] == "4"


def test_unknown_task_lists_available_and_suggests_nearest(
    tmp_path: Path, write_task: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_task(GENERATE, {"fitness": ITEMS})
    write_task({**GENERATE, "name": "j-read"}, {"fitness": ITEMS})
    monkeypatch.setattr(task_module, "ZOO_TASKS_DIR", tmp_path)
    with pytest.raises(TaskError) as info:
        load_task("arth")
    message = str(info.value)
    assert "unknown task 'arth'" in message
    assert "did you mean 'arith'?" in message
    assert "available tasks: arith, j-read" in message
    assert "\n" not in message


def test_missing_task_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(TaskError, match=r"nope\.yaml' does not exist"):
        load_task(tmp_path / "nope.yaml")


def test_malformed_jsonl_names_file_and_line(write_task: Callable, tmp_path: Path) -> None:
    path = write_task(GENERATE, {"fitness": ITEMS})
    split = tmp_path / "arith.fitness.jsonl"
    good = split.read_text().splitlines()
    split.write_text("\n".join([good[0], '{"prompt": "q", "answer": ', good[1], "[1, 2]"]) + "\n")
    with pytest.raises(TaskError) as info:
        load_task(path).items("fitness")
    message = str(info.value)
    assert f"{split}:2: not valid JSON" in message
    assert f"{split}:4: expected a JSON object" in message
    assert ":3:" not in message


@pytest.mark.parametrize(
    ("kind", "item", "problem"),
    [
        ("generate", {"prompt": "q"}, "missing key 'answer'"),
        ("generate", {"prompt": 3, "answer": "1"}, "'prompt' must be a str"),
        ("choice", {"prompt": "q", "choices": [], "label": 0}, "'choices' must be a non-empty"),
        ("choice", {"prompt": "q", "choices": ["a", "b"], "label": 2}, "'label' 2 is out of"),
        ("perplexity", {"text": "  "}, "'text' is empty"),
    ],
)
def test_item_shape_errors(
    write_task: Callable, tmp_path: Path, kind: str, item: dict, problem: str
) -> None:
    path = write_task({"name": "t", "type": kind}, {"fitness": [item]})
    with pytest.raises(TaskError, match=f"t.fitness.jsonl:1: {problem}"):
        load_task(path).items("fitness")


def test_missing_split_lists_available_splits(write_task: Callable) -> None:
    task = load_task(write_task(GENERATE, {"fitness": ITEMS, "test": ITEMS}))
    with pytest.raises(TaskError, match="no split 'dev'; available splits: fitness, test"):
        task.items("dev")


def test_unknown_key_names_the_nearest_valid_key(write_task: Callable) -> None:
    path = write_task({**GENERATE, "max_new_token": 4}, {"fitness": ITEMS})
    with pytest.raises(
        TaskError, match=r"unknown key 'max_new_token' \(did you mean 'max_new_tokens'"
    ):
        load_task(path)


def test_all_config_problems_are_reported_at_once(write_task: Callable) -> None:
    config = {
        "name": "c",
        "type": "choice",
        "stop": ["."],
        "answer_pattern": "(",
        "primary_metric": "strict",
    }
    with pytest.raises(TaskError) as info:
        load_task(write_task(config, {"fitness": [{"prompt": "q", "choices": ["a"], "label": 0}]}))
    message = str(info.value)
    assert "stop, answer_pattern only apply to type 'generate'" in message
    assert "answer_pattern '(' is not a valid regex" in message
    assert "primary_metric 'strict' is not a metric of this task" in message


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\ntype: [generate\n")
    with pytest.raises(TaskError, match=r"bad\.yaml:\d+ is not valid YAML"):
        load_task(path)
