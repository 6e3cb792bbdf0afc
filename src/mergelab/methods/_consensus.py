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
    total = deltas[0].clone() if len(deltas) == 1 else torch.add(deltas[0], deltas[1])
    for d in deltas[2:]:
        total += d
    return total.sign_().add_(0.5).sign_()  # sign(0) + 0.5 > 0: a zero sum elects +1


def agrees(delta: torch.Tensor, signs: torch.Tensor) -> torch.Tensor:
    """Boolean mask ``sign(delta) == s``: ``delta * s > 0``, so zeros never agree."""
    return (delta * signs) > 0


def sign_consensus(
    deltas: list[torch.Tensor], weight: list[float], normalize: bool
) -> torch.Tensor:
    """``sum_i mask_i d_i``, divided by ``sum_i mask_i w_i`` (0 -> 1) when ``normalize``.

    ``deltas`` are the weighted task vectors ``w_i d_i``; the election uses their mass. They are
    consumed: each is overwritten by ``relu(s d_i)``, its agreeing part with the elected sign
    taken out, so ``mask_i d_i = s relu(s d_i)`` and no boolean mask is formed (on a CPU, float
    arithmetic is several times faster than boolean branches).
    """
    signs = elect_signs(deltas)
    divisor = torch.zeros_like(signs) if normalize else None
    mixed = None
    for d, w in zip(deltas, weight, strict=True):
        agreeing = d.mul_(signs).clamp_(min=0.0)  # |d_i| where sign(d_i) == s, else 0
        if divisor is not None:
            divisor.add_(torch.sign(agreeing), alpha=w)
        mixed = agreeing if mixed is None else mixed.add_(agreeing)
    assert mixed is not None
    mixed.mul_(signs)
    if divisor is None:
        return mixed
    unset = torch.sign(divisor).abs_().sub_(1.0).neg_()  # 1 where divisor == 0, else 0
    return mixed.div_(divisor.add_(unset))


def sum_consensus(deltas: list[torch.Tensor], weight: list[float], normalize: bool) -> torch.Tensor:
    """``sum_i d_i``, divided by ``sum_i w_i`` (left alone when its abs is below 1e-8) when
    ``normalize``. The first delta is consumed (it holds the sum)."""
    mixed = deltas[0]
    for d in deltas[1:]:
        mixed += d
    total = sum(weight)
    return mixed.div_(total) if normalize and abs(total) >= 1e-8 else mixed
