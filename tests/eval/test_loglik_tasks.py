"""Multiple choice and perplexity on a bigram model: expected values from numpy."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from eval_fakes import BOS, VOCAB, WORDS, bigram_lm

from mergelab.eval import TaskEvaluator, load_task

CHOICE_ITEMS = [
    {"prompt": "how many apples ?", "choices": ["1", "2", "3"], "label": 1},
    {"prompt": "tom has", "choices": ["red apples", "blue", "green pens"], "label": 0},
    {"prompt": "ann has 3 pens", "choices": ["yes", "no"], "label": 1},
    {"prompt": "q a1 a2", "choices": ["maybe", "red green blue", "a3 a4"], "label": 2},
    {"prompt": "then tom buys", "choices": ["1 apples", "2 pens"], "label": 0},
]
TEXTS = ["tom has 3 apples .", "ann eats 2 pens", "how many ?", "q"]


@pytest.fixture(scope="module")
def table() -> np.ndarray:
    """(V, V) bigram logits: row a = logits of the token after a."""
    return np.random.default_rng(11).normal(0.0, 2.0, size=(len(WORDS), len(WORDS)))


def log_softmax(row: np.ndarray) -> np.ndarray:
    return row - np.log(np.exp(row - row.max()).sum()) - row.max()


def reference_loglik(table: np.ndarray, context: str, continuation: str) -> float:
    """sum_t log p(c_t | previous token) with the sequence bos + context + continuation."""
    seq = [BOS] + [VOCAB[w] for w in context.split()]
    total = 0.0
    for word in continuation.split():
        token = VOCAB[word]
        total += log_softmax(table[seq[-1]])[token]
        seq.append(token)
    return total


def test_choice_accuracy_and_norm_match_numpy(
    write_task: Callable, tokenizer, table: np.ndarray
) -> None:
    model = bigram_lm(torch.tensor(table, dtype=torch.float32))
    evaluator = TaskEvaluator(
        load_task(write_task({"name": "mc", "type": "choice"}, {"fitness": CHOICE_ITEMS})),
        tokenizer,
    )
    correct, correct_norm = 0, 0
    for item, detail in zip(CHOICE_ITEMS, evaluator.details(model), strict=True):
        scores = [reference_loglik(table, item["prompt"], c) for c in item["choices"]]
        normed = [s / len(c) for s, c in zip(scores, item["choices"], strict=True)]
        assert detail["logliks"] == pytest.approx(scores, rel=1e-5)
        correct += int(np.argmax(scores)) == item["label"]
        correct_norm += int(np.argmax(normed)) == item["label"]
    metrics = evaluator(model)
    assert list(metrics) == ["accuracy", "accuracy_norm"]
    assert metrics["accuracy"] == pytest.approx(correct / len(CHOICE_ITEMS))
    assert metrics["accuracy_norm"] == pytest.approx(correct_norm / len(CHOICE_ITEMS))


def test_length_normalisation_flips_the_pick(write_task: Callable, tokenizer) -> None:
    # After "q" only yes/red/no are possible: p(yes) = 2/4, p(red) = p(no) = 1/4;
    # after "red" only "green": p(green | red) = 1. So log p("red green" | q) = log(1/4).
    table = torch.full((len(WORDS), len(WORDS)), -1e9)
    q, yes, red, green, no = (VOCAB[w] for w in ("q", "yes", "red", "green", "no"))
    table[q, [red, no]] = 0.0
    table[q, yes] = math.log(2.0)
    table[red, green] = 0.0
    item = {"prompt": "q", "choices": ["yes", "red green"], "label": 1}
    # accuracy: log(1/2) > log(1/4) -> pick 0 (wrong)
    # accuracy_norm: log(1/2)/3 = -0.231 < log(1/4)/9 = -0.154 -> pick 1 (right)
    model = bigram_lm(table)
    evaluator = TaskEvaluator(
        load_task(write_task({"name": "mc", "type": "choice"}, {"fitness": [item]})), tokenizer
    )
    assert evaluator.details(model)[0]["logliks"] == pytest.approx(
        [math.log(1 / 2), math.log(1 / 4)], abs=1e-6
    )
    assert evaluator(model) == {"accuracy": 0.0, "accuracy_norm": 1.0}


def test_perplexity_matches_numpy(write_task: Callable, tokenizer, table: np.ndarray) -> None:
    model = bigram_lm(torch.tensor(table, dtype=torch.float32))
    items = [{"text": t} for t in TEXTS]
    task = load_task(write_task({"name": "ppl", "type": "perplexity"}, {"fitness": items}))
    nll_sum = -sum(reference_loglik(table, "", text) for text in TEXTS)
    tokens = sum(len(text.split()) for text in TEXTS)
    for batch_size in (None, 1, 3):
        metrics = TaskEvaluator(task, tokenizer, batch_size=batch_size)(model)
        assert list(metrics) == ["perplexity", "nll"]
        assert metrics["nll"] == pytest.approx(nll_sum / tokens, rel=1e-5)
        assert metrics["perplexity"] == pytest.approx(math.exp(nll_sum / tokens), rel=1e-5)
    details = TaskEvaluator(task, tokenizer).details(model)
    assert [d["tokens"] for d in details] == [5, 4, 3, 1]
    assert details[3]["nll"] == pytest.approx(-reference_loglik(table, "", "q"), rel=1e-5)
