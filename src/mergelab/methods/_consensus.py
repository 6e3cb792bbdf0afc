"""Sign consensus of TIES-Merging (Yadav et al. 2023, https://arxiv.org/abs/2306.01708, Alg. 1).

Elected sign ``s = +1 where sum_i d_i >= 0 else -1``: the summed mass of the (weighted) task
vectors, not a count of signs. Model ``i`` agrees at an entry when ``sign(d_i) == s``; a zero
entry never agrees, so it adds neither to the mix nor to the divisor.

The paper averages the agreeing entries (the disjoint mean); with per-model weights mergekit,
and so mergelab, divide by the sum of the agreeing models' weights instead.
"""

from __future__ import annotations

import torch


def elect_signs(deltas: list[torch.Tensor]) -> torch.Tensor:
    """Elected sign ``s`` (+1 or -1, in the deltas' dtype): +1 where ``sum_i d_i >= 0``."""
    total = deltas[0].clone()
    for d in deltas[1:]:
        total += d
    return total.sign_().add_(0.5).sign_()  # sign(0) + 0.5 > 0: a zero sum elects +1


def agrees(delta: torch.Tensor, signs: torch.Tensor) -> torch.Tensor:
    """Boolean mask ``sign(delta) == s``: ``delta * s > 0``, so zeros never agree."""
    return (delta * signs) > 0


def sign_consensus(
    deltas: list[torch.Tensor], weight: list[float]
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mixed, divisor)``: ``mixed = sum_i mask_i d_i``, ``divisor = sum_i mask_i w_i`` (0 -> 1).

    ``deltas`` are the weighted task vectors ``w_i d_i``; the election uses their mass. The
    masks are computed in float arithmetic (``clamp(sign(d_i s), 0, 1)``), not as booleans:
    on a CPU that is several times faster.
    """
    signs = elect_signs(deltas)
    mixed = torch.zeros_like(deltas[0])
    divisor = torch.zeros_like(deltas[0])
    for d, w in zip(deltas, weight, strict=True):
        mask = torch.mul(d, signs).sign_().clamp_(min=0.0)  # 1 where d s > 0, else 0
        mixed.addcmul_(d, mask)
        divisor.add_(mask, alpha=w)
    unset = torch.sign(divisor).abs_().sub_(1.0).neg_()  # 1 where divisor == 0, else 0
    return mixed, divisor.add_(unset)


def sum_consensus(deltas: list[torch.Tensor], weight: list[float]) -> tuple[torch.Tensor, float]:
    """``(mixed, divisor)``: ``mixed = sum_i d_i``, ``divisor = sum_i w_i`` (abs < 1e-8 -> 1)."""
    mixed = deltas[0].clone()
    for d in deltas[1:]:
        mixed += d
    total = sum(weight)
    return mixed, total if abs(total) >= 1e-8 else 1.0
