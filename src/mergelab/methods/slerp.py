"""SLERP: spherical linear interpolation between the base and one other model.

Shoemake 1985, "Animating rotation with quaternion curves", https://doi.org/10.1145/325165.325242.
On the flattened tensors: ``dot = <b/|b|, x/|x|>`` clamped to [-1, 1] (a norm below 1e-8
counts as 1). Nearly colinear (``|dot| > 0.9995``): ``(1-t) b + t x``. Otherwise, with
``theta = acos(dot)``: ``[sin((1-t) theta) b + sin(t theta) x] / sin(theta)`` on the
un-normalised tensors, so ``t = 0`` gives the base. The coefficients are computed in float64.
"""

from __future__ import annotations

import math

import torch

from mergelab.methods._registry import Param, merge_method

_COLINEAR_DOT = 0.9995
_NORM_EPS = 1e-8


@merge_method(
    "slerp",
    base="required",
    params=(Param("t", doc="interpolation factor: 0 gives the base, 1 the other model"),),
    summary="spherical interpolation between the base and one other model",
    paper="https://doi.org/10.1145/325165.325242",
    min_models=1,
    max_models=1,
)
def slerp(base: torch.Tensor, tensors: list[torch.Tensor], *, t: float) -> torch.Tensor:
    other = tensors[0]
    b, x = base.reshape(-1), other.reshape(-1)  # (n,)
    norm_b = float(torch.linalg.vector_norm(b))
    norm_x = float(torch.linalg.vector_norm(x))
    norm_b = norm_b if norm_b > _NORM_EPS else 1.0
    norm_x = norm_x if norm_x > _NORM_EPS else 1.0
    dot = min(1.0, max(-1.0, float(torch.dot(b, x)) / (norm_b * norm_x)))
    if abs(dot) > _COLINEAR_DOT:
        return (1.0 - t) * base + t * other
    theta = math.acos(dot)
    sin_theta = math.sin(theta)
    return (math.sin((1.0 - t) * theta) / sin_theta) * base + (
        math.sin(t * theta) / sin_theta
    ) * other
