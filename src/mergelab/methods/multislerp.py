"""Multi-SLERP: barycentric interpolation of several models on a hypersphere.

Source: C. Goddard, https://goddard.blog/posts/multislerp-wow-what-a-cool-idea (mergekit).
With weights ``w_i`` normalised to sum 1 (a sum with abs < 1e-8 is left as is) and
``d_i = x_i - b`` (``b = 0`` without a base), on the flattened tensors:
``u_i = d_i / (|d_i| + eps)``; ``m = normalise(sum_i w_i u_i)``;
tangent ``tau = sum_i w_i (u_i - <u_i, m> m)``; with ``s = |tau| + eps``,
``r = m cos(s) + tau sin(s) / s``; result ``b + r * sum_i w_i |d_i|``.
One model is returned as it is. When ``|sum_i w_i u_i| < eps`` the directions cancel and
the result is the linear ``b + sum_i w_i d_i`` (mergekit does this for two models and
raises for more).
"""

from __future__ import annotations

import torch

from mergelab.methods._registry import Param, merge_method


@merge_method(
    "multislerp",
    base="optional",
    params=(
        Param("weight", per_model=True, doc="barycentric weight of the model"),
        Param("normalize_weights", kind="bool", default=True, doc="rescale the weights to sum 1"),
        Param("eps", default=1e-8, doc="stabiliser added to norms", low=0.0),
    ),
    summary="barycentric spherical interpolation of any number of models",
    paper="https://goddard.blog/posts/multislerp-wow-what-a-cool-idea",
)
def multislerp(
    base: torch.Tensor | None,
    tensors: list[torch.Tensor],
    *,
    weight: list[float],
    normalize_weights: bool = True,
    eps: float = 1e-8,
) -> torch.Tensor:
    if len(tensors) == 1:
        return tensors[0]
    total = sum(weight)
    if normalize_weights and abs(total) >= 1e-8:
        weight = [w / total for w in weight]
    shape = tensors[0].shape
    deltas = [(x if base is None else x - base).reshape(-1) for x in tensors]  # (n,) each
    norms = [torch.linalg.vector_norm(d) for d in deltas]  # 0-d each
    units = [d / (norm + eps) for d, norm in zip(deltas, norms, strict=True)]
    mean = _weighted_sum(units, weight)
    mean_norm = torch.linalg.vector_norm(mean)
    if float(mean_norm) < eps:
        merged = _weighted_sum(deltas, weight)
    else:
        m = mean / mean_norm  # unit mean direction
        tangent = _weighted_sum([u - torch.dot(u, m) * m for u in units], weight)
        s = torch.linalg.vector_norm(tangent) + eps
        direction = m * torch.cos(s) + tangent * (torch.sin(s) / s)  # exponential map at m
        merged = direction * _weighted_sum(norms, weight)
    merged = merged.reshape(shape)
    return merged if base is None else base + merged


def _weighted_sum(tensors: list[torch.Tensor], weight: list[float]) -> torch.Tensor:
    """``sum_i w_i t_i`` over equally shaped tensors."""
    total = tensors[0] * weight[0]
    for x, w in zip(tensors[1:], weight[1:], strict=True):
        total.add_(x, alpha=w)
    return total
