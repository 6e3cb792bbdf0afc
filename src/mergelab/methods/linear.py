"""Linear merge / model soup: a weighted average of the models (Wortsman et al. 2022).

Paper: https://arxiv.org/abs/2203.05482 (uniform soup = equal weights).
``sum_i w_i x_i / sum_i w_i``; without ``normalize``, ``sum_i w_i x_i``. A weight sum with
``abs < 1e-8`` is treated as 1 (mergekit 0.1.5 divides by it regardless).
"""

from __future__ import annotations

import torch

from mergelab.methods._registry import Param, merge_method


@merge_method(
    "linear",
    base="ignored",
    elementwise=True,
    params=(
        Param("weight", per_model=True, doc="weight w_i of the model (may be negative)"),
        Param("normalize", kind="bool", default=True, doc="divide by the sum of the weights"),
    ),
    summary="weighted average of the models (model soup)",
    paper="https://arxiv.org/abs/2203.05482",
)
def linear(
    base: torch.Tensor | None,
    tensors: list[torch.Tensor],
    *,
    weight: list[float],
    normalize: bool = True,
) -> torch.Tensor:
    merged = tensors[0] * weight[0]  # sum_i w_i x_i, shape of x_i
    for x, w in zip(tensors[1:], weight[1:], strict=True):
        merged.add_(x, alpha=w)
    if not normalize:
        return merged
    total = sum(weight)
    return merged / (total if abs(total) >= 1e-8 else 1.0)
