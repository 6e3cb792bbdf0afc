"""The committed task files: regenerated exactly, disjoint splits, valid for the evaluator."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from mergelab.errors import TaskError
from mergelab.zoo.tasks import SPLITS, TASK_DEFS, TASKS_DIR, generate_tasks, task_path, write_tasks


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tasks")
    write_tasks(folder)
    return folder


def test_committed_files_match_the_generator(regenerated: Path) -> None:
    fresh = sorted(p.name for p in regenerated.iterdir())
    assert fresh == sorted(p.name for p in TASKS_DIR.iterdir() if p.suffix in {".yaml", ".jsonl"})
    for name in fresh:
        assert (TASKS_DIR / name).read_bytes() == (regenerated / name).read_bytes(), name


def test_splits_are_disjoint_and_sized() -> None:
    for name, splits in generate_tasks().items():
        keys = {
            split: [item.get("prompt", item.get("text")) for item in items]
            for split, items in splits.items()
        }
        assert set(keys) == set(SPLITS)
        assert not set(keys["fitness"]) & set(keys["test"]), name
        for split in SPLITS:
            assert len(keys[split]) == len(set(keys[split])) == TASK_DEFS[name].size


def test_main_tasks_have_500_items_per_split() -> None:
    for name in ("j-arith", "j-read", "e-arith", "e-read"):
        assert TASK_DEFS[name].size == 500


def test_yaml_follows_the_shared_format() -> None:
    for name in TASK_DEFS:
        spec = yaml.safe_load(task_path(name).read_text(encoding="utf-8"))
        assert spec["name"] == name
        assert spec["type"] in {"generate", "choice", "perplexity"}
        for split in SPLITS:
            lines = (TASKS_DIR / spec["splits"][split]).read_text(encoding="utf-8").splitlines()
            items = [json.loads(line) for line in lines]
            if spec["type"] == "perplexity":
                assert all(set(item) == {"text"} for item in items)
                continue
            for item in items:
                assert set(item) == {"prompt", "answer", "target"}
                # the reference completion is right under the task's own scoring rule
                assert re.findall(spec["answer_pattern"], item["target"])[-1] == item["answer"]
                assert re.fullmatch(spec["format_pattern"], item["target"])
                if "forbidden_pattern" in spec:
                    assert not re.search(spec["forbidden_pattern"], item["target"])


def test_j_arith_strict_needs_the_j_frame() -> None:
    spec = yaml.safe_load(task_path("j-arith").read_text(encoding="utf-8"))
    assert re.fullmatch(spec["format_pattern"], "kotae wa tom 12 pens desu 。")
    assert not re.fullmatch(spec["format_pattern"], "so tom 12 pens .")
    assert spec["primary_metric"] == "strict"


def test_unknown_task_names_the_known_ones() -> None:
    with pytest.raises(TaskError, match="j-arith"):
        task_path("j-arithmetic")
