"""Residual-stream states of the base model entering each layer, pooled over prompts.

With ``output_hidden_states=True`` a Llama/Mistral model returns L + 1 states; state l
(l < L) is the residual stream entering layer l (state 0 = the token embeddings), the last
one is the final norm's output and is not used. Per prompt the states are pooled over
positions (``last``: the last real token, as mergekit's ``hidden`` mode intends; ``mean``:
the mean over real tokens, mergekit's ``hidden_avg``, which there also averages padding
positions: here padding is masked out), then averaged over prompts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch

from mergelab.moe.prompts import padded_batches

Pool = Literal["last", "mean"]


@torch.no_grad()
def mean_states(
    model: Any,
    encoded: Sequence[list[int]],
    *,
    layers: int,
    pool: Pool,
    pad_id: int,
    batch_size: int = 16,
    device: str = "cpu",
) -> torch.Tensor:
    """mean over prompts p of pool_t(h_l[p, t]) for every layer l: [L, H] in float32."""
    total: torch.Tensor | None = None
    for ids, mask in padded_batches(encoded, batch_size, pad_id):
        ids, mask = ids.to(device), mask.to(device)
        out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        states = torch.stack(out.hidden_states[:layers]).float()  # [L, B, T, H]
        if pool == "last":
            last = mask.sum(dim=1) - 1  # [B]: index of each row's last real token
            pooled = states[:, torch.arange(ids.shape[0], device=device), last]  # [L, B, H]
        else:
            weights = mask.to(states.dtype)[None, :, :, None]  # [1, B, T, 1]
            pooled = (states * weights).sum(dim=2) / weights.sum(dim=2)  # [L, B, H]
        batch_sum = pooled.sum(dim=1).cpu()  # [L, H]
        total = batch_sum if total is None else total + batch_sum
    if total is None:
        raise ValueError("no prompts to pool")
    return total / len(encoded)
