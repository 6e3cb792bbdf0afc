"""NuSLERP: SLERP between two models (or their task vectors), over the tensor or per row.

Source: mergekit's ``nuslerp`` method (C. Goddard, 2024). ``t = w_2 / (w_1 + w_2)`` (0.5 when
``|w_1 + w_2| < 1e-6``). ``nuslerp_flatten`` (default) interpolates the flattened tensor;
otherwise each row (last dimension) separately, or each column with ``nuslerp_row_wise``
(dimension 0 swapped to the end). Colinear directions (``1 - cos^2 <= 1e-16``) are lerped.
With a base model: ``b + nuslerp(x_1 - b, x_2 - b)``.
"""

from __future__ import annotations

import torch

from mergelab.methods._registry import Param, merge_method

_NORM_EPS = 1e-7  # norms are clamped to this before normalising (as mergekit does)
_COLINEAR = 1e-16  # lerp where 1 - cos^2 = sin^2 is at most this


def _slerp_last_dim(t: float, v0: torch.Tensor, v1: torch.Tensor) -> torch.Tensor:
    """SLERP of each vector along the last dimension: v0, v1 of shape (..., L)."""
    n0 = torch.linalg.vector_norm(v0, dim=-1, keepdim=True).clamp_min(_NORM_EPS)  # (..., 1)
    n1 = torch.linalg.vector_norm(v1, dim=-1, keepdim=True).clamp_min(_NORM_EPS)
    cos = ((v0 / n0) * (v1 / n1)).sum(dim=-1, keepdim=True).clamp(-1.0, 1.0)  # (..., 1)
    colinear = (1.0 - cos * cos) <= _COLINEAR
    theta = torch.acos(torch.where(colinear, 0.0, cos))  # colinear rows: any finite angle
    slerped = (torch.sin((1.0 - t) * theta) * v0 + torch.sin(t * theta) * v1) / torch.sin(theta)
    return torch.where(colinear, (1.0 - t) * v0 + t * v1, slerped)


@merge_method(
    "nuslerp",
    base="optional",
    params=(
        Param("weight", per_model=True, doc="relative weight; t = w_2 / (w_1 + w_2)"),
        Param(
            "nuslerp_flatten",
            kind="bool",
            default=True,
            doc="interpolate the whole flattened tensor (false: per row, or per column)",
        ),
        Param(
            "nuslerp_row_wise",
            kind="bool",
            default=False,
            doc="without flattening, interpolate along dimension 0 (columns of a matrix)",
        ),
    ),
    summary="SLERP of two models (or of their task vectors), whole tensor, per row or column",
    paper="https://github.com/arcee-ai/mergekit/blob/main/docs/merge_methods.md",
    min_models=2,
    max_models=2,
)
def nuslerp(
    base: torch.Tensor | None,
    tensors: list[torch.Tensor],
    *,
    weight: list[float],
    nuslerp_flatten: bool = True,
    nuslerp_row_wise: bool = False,
) -> torch.Tensor:
    total = weight[0] + weight[1]
    t = weight[1] / total if abs(total) >= 1e-6 else 0.5
    v0, v1 = tensors
    if base is not None:
        v0, v1 = v0 - base, v1 - base
    shape = v0.shape
    if nuslerp_flatten or v0.dim() < 2:
        merged = _slerp_last_dim(t, v0.reshape(-1), v1.reshape(-1)).reshape(shape)
    elif nuslerp_row_wise:
        merged = _slerp_last_dim(t, v0.transpose(0, -1), v1.transpose(0, -1)).transpose(0, -1)
    else:
        merged = _slerp_last_dim(t, v0, v1)
    return merged if base is None else base + merged
