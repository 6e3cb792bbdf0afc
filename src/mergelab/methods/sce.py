"""SCE: select, calculate, erase (FuseChat, Wan et al. 2024).

Paper: https://arxiv.org/abs/2408.07990 (mergekit's ``sce``). With task vectors ``d_i``:
select: keep the ``int(select_topk * nnz(var))`` entries of largest variance across models
(population variance; ``select_topk`` >= 1 keeps all); calculate: ``w_i = mean(d_i^2)``
normalised to sum 1 (uniform when their sum is below 1e-6); erase: TIES sign election on
the (selected, unweighted) ``d_i`` gives masks ``m_i``. Result
``b + sum_i w_i m_i d_i / max(sum_i w_i m_i, 1e-6)``.
"""

from __future__ import annotations

import torch

from mergelab.methods._consensus import agrees, elect_signs
from mergelab.methods._registry import Param, merge_method
from mergelab.methods._select import top_k_mask


@merge_method(
    "sce",
    base="required",
    params=(
        Param(
            "select_topk",
            default=1.0,
            doc="fraction of entries kept, those varying most across models",
            low=0.0,
            high=1.0,
        ),
        Param(
            "int8_mask",
            kind="bool",
            default=False,
            doc="accepted for mergekit compatibility; changes no result",
        ),
    ),
    summary="keep high-variance entries, weight models by mean squared delta, TIES erase",
    paper="https://arxiv.org/abs/2408.07990",
)
def sce(
    base: torch.Tensor,
    tensors: list[torch.Tensor],
    *,
    select_topk: float = 1.0,
    int8_mask: bool = False,
) -> torch.Tensor:
    deltas = [x - base for x in tensors]
    if select_topk < 1.0:
        variance = torch.stack(deltas).var(dim=0, correction=0)  # (*shape), across models
        k = int(select_topk * int(torch.count_nonzero(variance)))
        selected = top_k_mask(variance, k)
        deltas = [torch.where(selected, d, 0.0) for d in deltas]
    energy = [float((d * d).sum()) / d.numel() for d in deltas]  # mean(d_i^2)
    total = sum(energy)
    n = len(deltas)
    weight = [e / total for e in energy] if abs(total) >= 1e-6 else [1.0 / n] * n
    signs = elect_signs(deltas)
    mixed = torch.zeros_like(base)
    divisor = torch.zeros_like(base)
    for d, w in zip(deltas, weight, strict=True):
        mask = agrees(d, signs).to(d.dtype)  # m_i in {0, 1}
        mixed.addcmul_(d, mask, value=w)
        divisor.add_(mask, alpha=w)
    return base + mixed / divisor.clamp_min(1e-6)
