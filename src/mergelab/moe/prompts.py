"""Prompts as model input: ``bos + prompt`` token ids, right-padded into batches.

Both the router initialisation and the routing report feed prompts this way. Right padding
with an attention mask leaves every real position's hidden state exactly as if the prompt ran
alone (causal attention never lets a real token see a later pad), which the tests check.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch


def bos_id(tokenizer: Any, fallback: int | None) -> int | None:
    """The tokenizer's beginning-of-sequence id, else the model config's, else None."""
    found = getattr(tokenizer, "bos_token_id", None)
    return int(found) if found is not None else fallback


def encode(tokenizer: Any, prompts: Sequence[str], bos: int | None) -> list[list[int]]:
    """Token ids of ``bos + prompt`` for each prompt (the tokenizer adds no other specials)."""
    head = [bos] if bos is not None else []
    return [head + list(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]


def padded_batches(
    encoded: Sequence[list[int]], batch_size: int, pad_id: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(ids [B, T], mask [B, T])`` batches in order; mask is 1 on real tokens."""
    for start in range(0, len(encoded), batch_size):
        rows = encoded[start : start + batch_size]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, : len(row)] = 1
        yield ids, mask


def pad_id(tokenizer: Any) -> int:
    """The id padding positions get (never seen by real tokens); 0 when there is none."""
    for attr in ("pad_token_id", "eos_token_id"):
        found = getattr(tokenizer, attr, None)
        if found is not None:
            return int(found)
    return 0
