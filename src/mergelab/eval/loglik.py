"""Summed log-likelihood of the tail of each token sequence, in right-padded batches.

For a sequence x_0..x_{n-1} scored from index s >= 1:
    log p = sum_{t=s}^{n-1} log softmax(logits_{t-1})[x_t]
computed as ``logit[x_t] - logsumexp(logits)`` in float32, with one forward pass per batch
and no KV cache. Used by multiple choice (the choice tokens after the prompt) and by
perplexity (every token after bos).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mergelab.eval.batching import batch_key, pad, plan_batches


@dataclass(frozen=True)
class ScoreBatch:
    """Right-padded sequences; ``rows[b]`` is the sequence index of row b."""

    rows: list[int]
    input_ids: torch.Tensor  # (B, L) int64, pads on the right
    attention_mask: torch.Tensor  # (B, L)
    position_ids: torch.Tensor  # (B, L) 0..L-1
    scored: torch.Tensor  # (B, L-1) bool: whether input_ids[:, t+1] is scored


@torch.inference_mode(False)  # plain tensors, reusable whatever mode a later call runs in
def score_batches(
    seqs: list[list[int]],
    starts: list[int],
    plan: list[list[int]],
    pad_id: int,
    device: torch.device | str,
) -> list[ScoreBatch]:
    """One batch per group of ``plan``; sequence i is scored from token ``starts[i]``."""
    batches = []
    for chunk in plan:
        ids, mask = pad([seqs[i] for i in chunk], pad_id, "right")
        width = ids.shape[1]
        positions = torch.arange(width).expand(len(chunk), width)
        index = torch.arange(1, width)  # position of each predicted token, (L-1,)
        begin = torch.tensor([starts[i] for i in chunk])[:, None]  # (B, 1)
        end = torch.tensor([len(seqs[i]) for i in chunk])[:, None]  # (B, 1)
        scored = (index >= begin) & (index < end)  # (B, L-1)
        batches.append(
            ScoreBatch(
                chunk, ids.to(device), mask.to(device), positions.to(device), scored.to(device)
            )
        )
    return batches


class PlannedScoreBatches:
    """The score batches of fixed sequences, planned once per (model, batch-size) key."""

    def __init__(
        self,
        seqs: list[list[int]],
        starts: list[int],
        pad_id: int,
        *,
        batch_size: int | None,
        device: str,
    ) -> None:
        self.seqs = seqs
        self._starts = starts
        self._pad_id = pad_id
        self._batch_size = batch_size
        self._device = device
        self._planned: dict[tuple[int, float], list[ScoreBatch]] = {}

    def for_model(self, model: nn.Module) -> list[ScoreBatch]:
        """The batches sized for ``model`` (planned on first use, then reused)."""
        lengths = [len(s) for s in self.seqs]
        key = batch_key(
            model,
            self._batch_size,
            self._device,
            seq_len=max(lengths),
            n_rows=len(lengths),
            logit_positions=max(lengths),
        )
        if key not in self._planned:
            plan = plan_batches(lengths, key[0], call_tokens=key[1], calls=1)
            self._planned[key] = score_batches(
                self.seqs, self._starts, plan, self._pad_id, self._device
            )
        return self._planned[key]

    def logprobs(self, model: nn.Module) -> torch.Tensor:
        """(n,) float64: summed log-probability of each sequence's scored tokens."""
        return sequence_logprobs(model, self.for_model(model), len(self.seqs))


def sequence_logprobs(model: nn.Module, batches: list[ScoreBatch], n: int) -> torch.Tensor:
    """(n,) float64: summed log-probability of the scored tokens of each sequence."""
    sums = torch.zeros(n, dtype=torch.float64)
    for batch in batches:
        logits = model(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            position_ids=batch.position_ids,
            use_cache=False,
        ).logits[:, :-1, :]  # (B, L-1, V): logits[:, t] predict token t+1
        logits = logits.float()
        targets = batch.input_ids[:, 1:, None]  # (B, L-1, 1)
        logprobs = logits.gather(-1, targets).squeeze(-1) - logits.logsumexp(dim=-1)
        logprobs = torch.where(batch.scored, logprobs, 0.0)  # pads may hold anything
        sums[batch.rows] = logprobs.sum(dim=1).double().cpu()
    return sums
