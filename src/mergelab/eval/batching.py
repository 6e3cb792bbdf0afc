"""Batch planning for evaluation: which items share a padded batch, and how many rows fit.

Items are sorted by length (longest first) and cut into contiguous batches. Where the cut
points go is a small dynamic programme over the distinct lengths that minimises

    cost = sum over batches b of  rows_b x len_b  +  calls_b x call_tokens

the padded tokens computed plus a fixed per-forward-call overhead expressed in tokens.
On a small model on CPU a forward call costs as much as ~100 tokens of compute, so a few
well-padded batches win; on a large model ``call_tokens`` is ~0 and the plan becomes one
batch per length (no padding at all). ``max_rows`` caps every batch by memory.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

MEMORY_BUDGET_BYTES = 512 * 2**20
FALLBACK_ROWS = 64
FALLBACK_CALL_TOKENS = 100.0
# A forward call's fixed cost on CPU in multiply-adds: ~0.5 ms per layer of Python and kernel
# launches at ~20 GFLOP/s, against ~12·hidden² multiply-adds per token per layer.
CPU_CALL_MACS = 5e6
GPU_CALL_TOKENS = 4096.0


def plan_batches(
    lengths: list[int], max_rows: int, *, call_tokens: float, calls: int
) -> list[list[int]]:
    """Item indices grouped into batches (each sorted longest first, <= ``max_rows`` rows)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    sorted_lengths = [lengths[i] for i in order]
    cuts = [0, *(k for k in range(1, len(order)) if sorted_lengths[k] != sorted_lengths[k - 1])]
    cuts.append(len(order))

    def chunks(start: int, end: int) -> list[tuple[int, int]]:
        return [(a, min(a + max_rows, end)) for a in range(start, end, max_rows)]

    def cost(start: int, end: int) -> float:
        return sum((b - a) * sorted_lengths[a] + calls * call_tokens for a, b in chunks(start, end))

    best = [0.0] + [float("inf")] * (len(cuts) - 1)  # best[j]: cheapest plan of cuts[:j + 1]
    back = [0] * len(cuts)
    for j in range(1, len(cuts)):
        for i in range(j):
            candidate = best[i] + cost(cuts[i], cuts[j])
            if candidate < best[j]:
                best[j], back[j] = candidate, i
    segments = []
    j = len(cuts) - 1
    while j > 0:
        segments.append((cuts[back[j]], cuts[j]))
        j = back[j]
    return [order[a:b] for start, end in reversed(segments) for a, b in chunks(start, end)]


def pad(
    seqs: list[list[int]], pad_id: int, side: Literal["left", "right"]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask), both (B, L) int64, L the longest sequence."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        span = slice(width - len(seq), width) if side == "left" else slice(0, len(seq))
        ids[row, span] = torch.tensor(seq, dtype=torch.long)
        mask[row, span] = 1
    return ids, mask


def max_rows(model: nn.Module, n_rows: int, seq_len: int, *, logit_positions: int) -> int:
    """Rows per batch so one forward pass stays within ``MEMORY_BUDGET_BYTES``.

    Per row: seq_len x (K and V of every layer 2·layers·hidden + a few hidden-size
    activations 4·hidden + the MLP intermediate) elements, plus logit_positions x vocab
    logits (x2 for the float32 log-softmax).
    """
    shape = _shape(model)
    if shape is None:
        return max(1, min(n_rows, FALLBACK_ROWS))
    hidden, layers, vocab, inter = shape
    first = next(model.parameters(), None)
    elem = first.element_size() if first is not None else 4
    per_token = 2 * layers * hidden + 4 * hidden + inter
    per_row = elem * seq_len * per_token + 4 * 2 * logit_positions * vocab
    return max(1, min(n_rows, MEMORY_BUDGET_BYTES // per_row))


def call_tokens(model: nn.Module, device: str) -> float:
    """The fixed cost of one forward call, in tokens' worth of compute (see module doc)."""
    if torch.device(device).type != "cpu":
        return GPU_CALL_TOKENS
    shape = _shape(model)
    if shape is None:
        return FALLBACK_CALL_TOKENS
    hidden, _, _, inter = shape
    return max(1.0, CPU_CALL_MACS / (4 * hidden * hidden + 3 * hidden * inter))


def batch_key(
    model: nn.Module,
    batch_size: int | None,
    device: str,
    *,
    seq_len: int,
    n_rows: int,
    logit_positions: int,
) -> tuple[int, float]:
    """(rows per batch, call cost in tokens) for ``model``: what a batch plan depends on."""
    rows = batch_size or max_rows(model, n_rows, seq_len, logit_positions=logit_positions)
    return rows, call_tokens(model, device)


def _shape(model: nn.Module) -> tuple[int, int, int, int] | None:
    """(hidden, layers, vocab, intermediate) from an HF-style ``model.config``, or None."""
    config = getattr(model, "config", None)
    hidden = getattr(config, "hidden_size", None)
    layers = getattr(config, "num_hidden_layers", None)
    vocab = getattr(config, "vocab_size", None)
    if not (isinstance(hidden, int) and isinstance(layers, int) and isinstance(vocab, int)):
        return None
    inter = getattr(config, "intermediate_size", None)
    return hidden, layers, vocab, inter if isinstance(inter, int) else 4 * hidden
