"""Model Stock: move from the base towards the models' average by their angular agreement.

Paper: Jang et al. 2024, https://arxiv.org/abs/2403.19522. With task vectors ``d_i`` (N >= 2),
``cos`` = mean pairwise cosine of the ``d_i`` (flattened, or per row of the last dimension
with ``filter_wise``; each cosine divides by ``max(|d_i| |d_j|, 1e-6)`` and is clamped to
[-1, 1]); ``t = N cos / (1 + (N-1) cos)``; result ``t * mean_i(x_i) + (1-t) b``.
The paper derives ``t`` for a single angle; the mean of pairwise cosines generalises it to
N models (as mergekit does). ``t = 0`` when ``1 + (N-1) cos < 1e-6`` (mergekit divides).
"""

from __future__ import annotations

import torch

from mergelab.methods._registry import Param, merge_method


@merge_method(
    "model_stock",
    base="required",
    params=(
        Param(
            "filter_wise",
            kind="bool",
            default=False,
            doc="one ratio t per row (last dimension) instead of one per tensor",
        ),
    ),
    summary="interpolate base -> model average by the task vectors' mean cosine",
    paper="https://arxiv.org/abs/2403.19522",
    min_models=2,
)
def model_stock(
    base: torch.Tensor, tensors: list[torch.Tensor], *, filter_wise: bool = False
) -> torch.Tensor:
    n = len(tensors)
    # rows: (r, L); one row for the whole tensor unless filter_wise on a >= 2-D tensor
    if filter_wise and base.dim() >= 2:
        rows = [x.reshape(-1, base.shape[-1]) for x in tensors]
        b = base.reshape(-1, base.shape[-1])
    else:
        rows = [x.reshape(1, -1) for x in tensors]
        b = base.reshape(1, -1)
    deltas = [x - b for x in rows]
    norms = [torch.linalg.vector_norm(d, dim=-1) for d in deltas]  # (r,) each
    cos_sum = torch.zeros_like(norms[0])
    for i in range(n):
        for j in range(i + 1, n):
            dot = (deltas[i] * deltas[j]).sum(dim=-1)
            cos_sum += (dot / (norms[i] * norms[j]).clamp_min(1e-6)).clamp(-1.0, 1.0)
    cos = (cos_sum / (n * (n - 1) / 2)).unsqueeze(-1)  # (r, 1)
    denom = 1.0 + (n - 1) * cos
    degenerate = denom < 1e-6
    t = torch.where(degenerate, 0.0, n * cos / torch.where(degenerate, 1.0, denom))  # (r, 1)
    mean = rows[0].clone()
    for x in rows[1:]:
        mean += x
    mean /= n
    return (t * mean + (1.0 - t) * b).reshape(base.shape)
