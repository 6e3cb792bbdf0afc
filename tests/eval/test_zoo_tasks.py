"""The shared task contract with the zoo: every shipped task loads and fits its world's
tokenizer."""

from __future__ import annotations

import pytest

from mergelab.eval import TaskEvaluator, load_task, zoo_task_names
from mergelab.zoo.tasks import TASK_DEFS
from mergelab.zoo.tokenizer import build_tokenizer

NAMES = zoo_task_names()


def test_zoo_ships_tasks() -> None:
    assert {"j-arith", "j-read", "e-arith"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_zoo_task_builds_an_evaluator(name: str) -> None:
    task = load_task(name)
    assert task.name == name
    for split in ("fitness", "test"):
        tokenizer = build_tokenizer(TASK_DEFS[name].world)
        evaluator = TaskEvaluator(task, tokenizer, split=split)
        assert evaluator.n == len(task.items(split)) > 0
