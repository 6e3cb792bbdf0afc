"""The lm-evaluation-harness adapter, offline: a local multiple-choice task over a JSONL file.

Runs for real when the ``lmeval`` extra is installed (skipped only when it is not).
"""

from __future__ import annotations

import builtins
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from eval_fakes import tiny_llama

from mergelab.errors import EvaluationError
from mergelab.eval import LmEvalEvaluator, TaskEvaluator, load_task
from mergelab.eval.lm_eval_adapter import flatten_results

WORDS = ["red", "green", "blue", "yes", "no", "maybe", "apples", "pens"]


def choice_items(n: int) -> list[dict[str, Any]]:
    rng = random.Random(5)
    items = []
    for _ in range(n):
        k = rng.randint(2, 4)
        choices = [" ".join(rng.choices(WORDS, k=rng.randint(1, 3))) for _ in range(k)]
        prompt = " ".join(rng.choices(["tom", "ann", "has", "how", "many", "?", "."], k=5))
        items.append({"prompt": prompt, "choices": choices, "label": rng.randrange(k)})
    return items


def test_flatten_results() -> None:
    results = {
        "toy": {"alias": "toy", "acc,none": 0.5, "acc_stderr,none": "N/A", "acc_norm,none": 0.25},
        "gen": {"exact_match,strict-match": 1.0, "exact_match_stderr,strict-match": 0.0},
    }
    assert flatten_results(results) == {
        "toy/acc": 0.5,
        "toy/acc_norm": 0.25,
        "gen/exact_match,strict-match": 1.0,
    }


def test_missing_lm_eval_names_the_extra(monkeypatch: pytest.MonkeyPatch, tokenizer) -> None:
    real_import = builtins.__import__

    def no_lm_eval(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "lm_eval" or name.startswith("lm_eval."):
            raise ModuleNotFoundError(f"No module named '{name}'", name="lm_eval")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_lm_eval)
    with pytest.raises(EvaluationError, match=r"pip install 'mergelab\[lmeval\]'"):
        LmEvalEvaluator(["toy"], tokenizer=tokenizer)


def test_accuracy_equals_our_choice_evaluator(
    tmp_path: Path, write_task: Callable, tokenizer
) -> None:
    pytest.importorskip("lm_eval")
    items = choice_items(24)
    data = tmp_path / "items.jsonl"
    data.write_text("".join(json.dumps(item) + "\n" for item in items))
    include = tmp_path / "lm_tasks"
    include.mkdir()
    config = {
        "task": "toy_choice",
        "dataset_path": "json",
        "dataset_kwargs": {
            "data_files": {"test": str(data)},
            "cache_dir": str(tmp_path / "hf-cache"),
        },
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "{{prompt}}",
        "doc_to_choice": "{{choices}}",
        "doc_to_target": "{{label}}",
        "metric_list": [
            {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
            {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True},
        ],
    }
    (include / "toy_choice.yaml").write_text(yaml.safe_dump(config))
    model = tiny_llama(seed=1)
    ours = TaskEvaluator(
        load_task(write_task({"name": "toy", "type": "choice"}, {"fitness": items})), tokenizer
    )(model)
    assert 0.0 < ours["accuracy"] < 1.0  # a score that can disagree
    theirs = LmEvalEvaluator(
        ["toy_choice"],
        tokenizer=tokenizer,
        include_path=str(include),
        include_defaults=False,
        batch_size=4,
    )(model)
    assert theirs == {
        "toy_choice/acc": pytest.approx(ours["accuracy"]),
        "toy_choice/acc_norm": pytest.approx(ours["accuracy_norm"]),
    }
