"""Cached batched greedy generation equals naive full-recompute generation, token for token."""

from __future__ import annotations

import random

import pytest
import torch
from eval_fakes import BOS, EOS, VOCAB, WORDS, tiny_llama
from torch import nn

from mergelab.eval.batching import plan_batches
from mergelab.eval.generate import greedy_generate, prompt_batches

STOP = VOCAB["."]


def naive_greedy(model: nn.Module, prompt: list[int], max_new: int) -> list[int]:
    """Reference: recompute the whole sequence for every new token; no cache, no padding."""
    seq = list(prompt)
    out: list[int] = []
    with torch.inference_mode():
        for _ in range(max_new):
            token = int(model(input_ids=torch.tensor([seq])).logits[0, -1].argmax())
            if token == EOS:
                break
            out.append(token)
            seq.append(token)
            if token == STOP:
                break
    return out


@pytest.fixture(scope="module")
def prompts() -> list[list[int]]:
    rng = random.Random(7)
    words = range(4, len(WORDS))
    return [[BOS, *rng.choices(words, k=rng.randint(1, 12))] for _ in range(8)]


MAX_NEW = 8


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return tiny_llama(seed=3)


@pytest.fixture(scope="module")
def expected(model: nn.Module, prompts: list[list[int]]) -> dict[int, list[int]]:
    reference = {i: naive_greedy(model, p, MAX_NEW) for i, p in enumerate(prompts)}
    assert len({tuple(v) for v in reference.values()}) > 3  # the test needs varied outputs
    return reference


@pytest.mark.parametrize(("rows", "call_tokens"), [(1, 0.0), (8, 0.0), (3, 1e9), (8, 1e9)])
def test_cached_generation_equals_naive(
    model: nn.Module,
    prompts: list[list[int]],
    expected: dict[int, list[int]],
    rows: int,
    call_tokens: float,
) -> None:
    max_new = MAX_NEW
    plan = plan_batches([len(p) for p in prompts], rows, call_tokens=call_tokens, calls=max_new)
    if rows > 1 and call_tokens > 0:  # the left padding path is exercised
        assert any(len({len(prompts[i]) for i in chunk}) > 1 for chunk in plan)
    with torch.inference_mode():
        got = greedy_generate(
            model,
            prompt_batches(prompts, plan, pad_id=0, device="cpu"),
            max_new_tokens=max_new,
            eos_ids={EOS},
            stop_ids={STOP},
        )
    assert got == expected


@pytest.mark.parametrize(
    ("lengths", "max_rows", "call_tokens", "expected"),
    [
        # free calls: one batch per distinct length, none padded
        ([3, 5, 3, 5, 4], 10, 0.0, [[1, 3], [4], [0, 2]]),
        # costly calls: everything in one batch, longest first
        ([3, 5, 3, 5, 4], 10, 1e6, [[1, 3, 4, 0, 2]]),
        # ... but never more than max_rows per batch; of the 3-call plans, the least padded
        ([3, 5, 3, 5, 4], 2, 1e6, [[1, 3], [4], [0, 2]]),
        # 100 tokens of 1-length rows vs one call of 10 tokens: split the long one off
        ([10, *[1] * 100], 200, 10.0, [[0], list(range(1, 101))]),
    ],
)
def test_plan_batches(
    lengths: list[int], max_rows: int, call_tokens: float, expected: list[list[int]]
) -> None:
    assert plan_batches(lengths, max_rows, call_tokens=call_tokens, calls=1) == expected


def test_plan_batches_covers_every_item_once() -> None:
    rng = random.Random(0)
    lengths = [rng.randint(1, 30) for _ in range(200)]
    for rows, call_tokens in [(1, 5.0), (7, 50.0), (64, 1e3), (500, 0.0)]:
        plan = plan_batches(lengths, rows, call_tokens=call_tokens, calls=3)
        assert sorted(i for chunk in plan for i in chunk) == list(range(200))
        assert all(1 <= len(chunk) <= rows for chunk in plan)
