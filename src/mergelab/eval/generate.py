"""Batched greedy generation with a KV cache, for any causal LM with the HF forward signature.

Prompts are left-padded into planned batches (:mod:`mergelab.eval.batching`) once.
Position ids count real tokens only (``cumsum(mask) - 1``), so a padded row generates
exactly what it would alone. One prefill pass keeps only the last position's logits where
the model supports ``logits_to_keep``; then one token per step is fed with the cache.
A batch stops as soon as every row has produced an eos or stop token.

The result equals ``transformers``' ``generate(do_sample=False)``, at about the same speed
on the zoo's models; it exists because an evaluator must work on any module with the HF
forward signature (a data-flow merge or a test double has no ``.generate``).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
from torch import nn

from mergelab.eval.batching import pad

_KEEPS_LOGITS: dict[type, bool] = {}


@dataclass(frozen=True)
class PromptBatch:
    """Left-padded prompts; ``rows[b]`` is the item index of row b."""

    rows: list[int]
    input_ids: torch.Tensor  # (B, L) int64, pads on the left
    attention_mask: torch.Tensor  # (B, L) 1 on real tokens
    position_ids: torch.Tensor  # (B, L) 0..len-1 on real tokens, 0 on pads


@torch.inference_mode(False)  # plain tensors, reusable whatever mode a later call runs in
def prompt_batches(
    prompts: list[list[int]], plan: list[list[int]], pad_id: int, device: torch.device | str
) -> list[PromptBatch]:
    """Left-padded batches on ``device``, one per group of prompt indices in ``plan``."""
    batches = []
    for chunk in plan:
        ids, mask = pad([prompts[i] for i in chunk], pad_id, "left")
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        batches.append(PromptBatch(chunk, ids.to(device), mask.to(device), positions.to(device)))
    return batches


def greedy_generate(
    model: nn.Module,
    batches: list[PromptBatch],
    *,
    max_new_tokens: int,
    eos_ids: set[int],
    stop_ids: set[int],
) -> dict[int, list[int]]:
    """Greedy continuation of every prompt: item index -> generated ids.

    Each list ends at the first eos (excluded) or the first stop token (kept), or after
    ``max_new_tokens`` tokens.
    """
    out: dict[int, list[int]] = {}
    for batch in batches:
        device = batch.input_ids.device
        enders = torch.tensor(sorted(eos_ids | stop_ids), dtype=torch.long, device=device)
        generated = _generate_batch(model, batch, max_new_tokens, enders)  # (B, T)
        for row, tokens in zip(batch.rows, generated.tolist(), strict=True):
            out[row] = _cut(tokens, eos_ids, stop_ids)
    return out


def _generate_batch(
    model: nn.Module, batch: PromptBatch, max_new_tokens: int, enders: torch.Tensor
) -> torch.Tensor:
    mask = batch.attention_mask
    keep = {"logits_to_keep": 1} if _keeps_logits(model) else {}
    result = model(
        input_ids=batch.input_ids,
        attention_mask=mask,
        position_ids=batch.position_ids,
        use_cache=True,
        **keep,
    )
    token = result.logits[:, -1, :].argmax(dim=-1)  # (B,)
    steps = [token]
    done = torch.isin(token, enders)
    position = batch.position_ids[:, -1:]  # (B, 1)
    ones = torch.ones_like(mask[:, :1])
    for _ in range(max_new_tokens - 1):
        if bool(done.all()):
            break
        mask = torch.cat([mask, ones], dim=1)  # (B, L + t)
        position = position + 1
        result = model(
            input_ids=token[:, None],
            attention_mask=mask,
            position_ids=position,
            past_key_values=result.past_key_values,
            use_cache=True,
        )
        token = result.logits[:, -1, :].argmax(dim=-1)
        steps.append(token)
        done |= torch.isin(token, enders)
    return torch.stack(steps, dim=1)


def _cut(tokens: list[int], eos_ids: set[int], stop_ids: set[int]) -> list[int]:
    for i, token in enumerate(tokens):
        if token in eos_ids:
            return tokens[:i]
        if token in stop_ids:
            return tokens[: i + 1]
    return tokens


def _keeps_logits(model: nn.Module) -> bool:
    """Whether ``model.forward`` accepts ``logits_to_keep`` (cached per model class)."""
    kind = type(model)
    if kind not in _KEEPS_LOGITS:
        try:
            names = set(inspect.signature(model.forward).parameters)
        except (TypeError, ValueError):  # a forward without a readable signature
            names = set()
        _KEEPS_LOGITS[kind] = "logits_to_keep" in names
    return _KEEPS_LOGITS[kind]
