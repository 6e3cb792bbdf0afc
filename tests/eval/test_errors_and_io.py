"""Unknown tokens, not-a-model folders, loading a saved model, and CallableEvaluator."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from eval_fakes import tiny_llama

from mergelab.errors import EvaluationError
from mergelab.eval import (
    CallableEvaluator,
    Evaluator,
    TaskEvaluator,
    evaluate_model,
    load_model,
    load_task,
)

ITEMS = [
    {"prompt": "how many kiwis does tom have ?", "answer": "3"},
    {"prompt": "tom has 3 kiwis and 2 plums .", "answer": "5"},
]


def test_unknown_task_words_are_named(write_task: Callable, tokenizer) -> None:
    task = load_task(write_task({"name": "fruit", "type": "generate"}, {"fitness": ITEMS}))
    with pytest.raises(EvaluationError) as info:
        TaskEvaluator(task, tokenizer)
    message = str(info.value)
    assert "the model's tokenizer lacks task tokens ['kiwis', 'does', 'have', 'and', 'plums']" in (
        message
    )
    assert "this task needs a tokenizer that knows them" in message


def test_unknown_choice_words_are_named(write_task: Callable, tokenizer) -> None:
    items = [{"prompt": "how many ?", "choices": ["1", "lots"], "label": 0}]
    task = load_task(write_task({"name": "mc", "type": "choice"}, {"fitness": items}))
    with pytest.raises(EvaluationError, match=r"lacks task tokens \['lots'\]"):
        TaskEvaluator(task, tokenizer)


def test_not_a_model_folder(tmp_path: Path, model_dir: Path) -> None:
    with pytest.raises(EvaluationError, match=r"model folder '.*nothing' does not exist"):
        load_model(tmp_path / "nothing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EvaluationError, match=r"'.*empty' is not a model folder: no config\.json"):
        load_model(empty)
    (model_dir / "model.safetensors").unlink()
    with pytest.raises(EvaluationError, match=r"'.*tiny-model' is not a model folder: no weights"):
        load_model(model_dir)


def test_load_model_round_trip(model_dir: Path) -> None:
    model, tokenizer = load_model(model_dir)
    reference = tiny_llama()
    ids = torch.tensor([tokenizer("tom has 3 apples .")["input_ids"]])
    with torch.inference_mode():
        assert torch.equal(model(input_ids=ids).logits, reference(input_ids=ids).logits)
    assert not model.training


def test_evaluate_model_matches_task_evaluator(model_dir: Path, write_task: Callable) -> None:
    items = [
        {"prompt": "tom has 3 apples . how many apples ?", "answer": "3"},
        {"prompt": "ann has 2 pens . then ann buys 1 pens . how many pens now ?", "answer": "3"},
    ]
    path = write_task({"name": "t", "type": "generate", "max_new_tokens": 4}, {"test": items})
    result = evaluate_model(model_dir, path, split="test")
    model, tokenizer = load_model(model_dir)
    assert result.model_dump() == {
        "model": str(model_dir),
        "task": "t",
        "split": "test",
        "n": 2,
        "metrics": TaskEvaluator(load_task(path), tokenizer, split="test")(model),
    }


def test_callable_evaluator() -> None:
    model = tiny_llama()
    assert CallableEvaluator(lambda m: 0.25)(model) == {"score": 0.25}
    as_dict = CallableEvaluator(lambda m: {"a": 1, "b": torch.tensor(0.5)})
    assert as_dict(model) == {"a": 1.0, "b": 0.5}
    assert isinstance(as_dict, Evaluator)

    def bad(m: torch.nn.Module) -> dict[str, object]:
        return {"a": "high"}

    with pytest.raises(EvaluationError, match="evaluator bad returned 'high' for metric 'a'"):
        CallableEvaluator(bad)(model)  # type: ignore[arg-type]
