"""Generative exact match on a scripted model: every metric has a hand-computed value."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from eval_fakes import FakeLM, scripted_lm

from mergelab.eval import TaskEvaluator, load_task

TASK = {
    "name": "j-arith",
    "type": "generate",
    "max_new_tokens": 8,
    "stop": ["."],
    "format_pattern": r"^ga -?\d+ desu \.$",
    "forbidden_pattern": r"\bzap\b",
}
# prompt -> (what the model says, the reference answer); verdicts worked out by hand:
#                                                  lenient strict format forbidden
SCRIPT = {
    "q a1 ?": ("ga 3 desu .", "3"),  #                 1      1      1      0
    "q a2 ?": ("3 .", "3"),  #                         1      0      0      0
    "q a3 ?": ("ga zap 5 desu .", "5"),  #             1      0      0      1
    "q a4 ?": ("ga 4 desu . ga 7 desu .", "4"),  #     1      1      1      0  (cut at ".")
    "q a5 ?": ("ga 2 1 desu", "2"),  #                 0      0      0      0  (last int is 1)
    "q a6 ?": ("1 2 3 4 5 6 7 8 9 10", "8"),  #        1      0      0      0  (8 new tokens)
    "q a7 ?": ("zap", "2"),  #                         0      0      0      1  (no number)
}
COMPLETIONS = [
    "ga 3 desu .",
    "3 .",
    "ga zap 5 desu .",
    "ga 4 desu .",
    "ga 2 1 desu",
    "1 2 3 4 5 6 7 8",
    "zap",
]


@pytest.fixture
def items() -> list[dict[str, str]]:
    return [{"prompt": p, "answer": answer} for p, (_, answer) in SCRIPT.items()]


@pytest.fixture
def model() -> FakeLM:
    return scripted_lm({p: said for p, (said, _) in SCRIPT.items()})


@pytest.mark.parametrize("batch_size", [None, 1, 3])
def test_metrics_match_hand_counts(
    write_task: Callable, tokenizer, items, model, batch_size: int | None
) -> None:
    evaluator = TaskEvaluator(
        load_task(write_task(TASK, {"fitness": items})), tokenizer, batch_size=batch_size
    )
    metrics = evaluator(model)
    assert list(metrics) == ["strict", "lenient", "format", "forbidden_rate"]
    assert metrics["strict"] == pytest.approx(2 / 7)
    assert metrics["lenient"] == pytest.approx(5 / 7)
    assert metrics["format"] == pytest.approx(2 / 7)
    assert metrics["forbidden_rate"] == pytest.approx(2 / 7)


def test_details_give_completions_and_extracted_answers(
    write_task: Callable, tokenizer, items, model
) -> None:
    evaluator = TaskEvaluator(load_task(write_task(TASK, {"fitness": items})), tokenizer)
    details = evaluator.details(model)
    assert [d["completion"] for d in details] == COMPLETIONS
    assert [d["extracted"] for d in details] == ["3", "3", "5", "4", "1", "8", None]
    assert [d["strict"] for d in details] == [True, False, False, True, False, False, False]


def test_without_format_pattern_strict_equals_lenient(
    write_task: Callable, tokenizer, items, model
) -> None:
    config = {k: v for k, v in TASK.items() if k not in ("format_pattern", "forbidden_pattern")}
    metrics = TaskEvaluator(load_task(write_task(config, {"fitness": items})), tokenizer)(model)
    assert metrics == {"strict": pytest.approx(5 / 7), "lenient": pytest.approx(5 / 7)}


def test_answer_pattern_group_one_of_the_last_match(
    write_task: Callable, tokenizer, items, model
) -> None:
    # the number right after "ga": item 5 now extracts 2 (right), item 6 extracts nothing
    config = {**TASK, "answer_pattern": r"ga (?:zap )?(\d+)", "primary_metric": "lenient"}
    evaluator = TaskEvaluator(load_task(write_task(config, {"fitness": items})), tokenizer)
    assert [d["extracted"] for d in evaluator.details(model)] == [
        "3",
        None,
        "5",
        "4",
        "2",
        None,
        None,
    ]
    assert evaluator(model)["lenient"] == pytest.approx(4 / 7)


def test_multi_token_stop_string_still_cuts(write_task: Callable, tokenizer, items, model) -> None:
    config = {**TASK, "stop": ["desu ."]}
    evaluator = TaskEvaluator(load_task(write_task(config, {"fitness": items})), tokenizer)
    completions = [d["completion"] for d in evaluator.details(model)]
    assert completions[3] == "ga 4 desu ."
    assert completions[1] == "3 ."  # no stop string: runs to eos


def test_generation_stops_when_every_row_is_done(write_task: Callable, tokenizer) -> None:
    # one row that says "ga 4 desu ." then would go on: 4 tokens = 1 prefill + 3 cached steps
    model = scripted_lm({"q a4 ?": "ga 4 desu . ga 7 desu ."})
    path = write_task(TASK, {"fitness": [{"prompt": "q a4 ?", "answer": "4"}]})
    TaskEvaluator(load_task(path), tokenizer)(model)
    assert model.calls == 4


def test_limit_keeps_the_first_items_and_mode_is_restored(
    write_task: Callable, tokenizer, items, model
) -> None:
    evaluator = TaskEvaluator(load_task(write_task(TASK, {"fitness": items})), tokenizer, limit=2)
    model.train()
    assert evaluator.n == 2
    assert evaluator(model)["lenient"] == 1.0
    assert model.training


def test_threads_apply_during_the_call_only(write_task: Callable, tokenizer, items) -> None:
    seen: list[int] = []
    script = scripted_lm({p: said for p, (said, _) in SCRIPT.items()})

    def spy(history: tuple[int, ...]) -> torch.Tensor:
        seen.append(torch.get_num_threads())
        return script.next_logits(history)

    before = torch.get_num_threads()
    evaluator = TaskEvaluator(
        load_task(write_task(TASK, {"fitness": items})), tokenizer, limit=1, threads=before + 1
    )
    evaluator(FakeLM(spy))
    assert set(seen) == {before + 1}
    assert torch.get_num_threads() == before
