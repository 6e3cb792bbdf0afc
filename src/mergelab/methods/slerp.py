"""SLERP: spherical linear interpolation between the base and one other model.

Shoemake 1985, "Animating rotation with quaternion curves", https://doi.org/10.1145/325165.325242.
On the flattened tensors: ``dot = <b/|b|, x/|x|>`` clamped to [-1, 1] (a norm below 1e-8
counts as 1). Nearly colinear (``|dot| > 0.9995``): ``(1-t) b + t x``. Otherwise, with
``theta = acos(dot)``: ``[sin((1-t) theta) b + sin(t theta) x] / sin(theta)`` on the
un-normalised tensors, so ``t = 0`` gives the base. The coefficients are computed in float64.

The norms and the dot product are sums over blocks of rows (one pass), the interpolation
is then computed block by block.
"""

from __future__ import annotations

import math

import torch

from mergelab.methods._registry import Param, block_merge_method

_COLINEAR_DOT = 0.9995
_NORM_EPS = 1e-8


class Slerp:
    """The block-wise SLERP of one tensor (see :mod:`mergelab.methods._blocks`)."""

    passes = 1
    output_needs_models = True

    def __init__(self, t: float) -> None:
        self._t = t
        self._sums = [0.0, 0.0, 0.0]  # |b|^2, |x|^2, <b, x>
        self._coefficients = (1.0 - t, t)  # of b and x: linear until the pass says otherwise

    def observe(self, step: int, base: torch.Tensor | None, tensors: list[torch.Tensor]) -> None:
        assert base is not None
        b, x = base.reshape(-1), tensors[0].reshape(-1)  # (n,) of this block
        self._sums[0] += float(torch.dot(b, b))
        self._sums[1] += float(torch.dot(x, x))
        self._sums[2] += float(torch.dot(b, x))

    def end_pass(self, step: int) -> None:
        norm_b, norm_x = math.sqrt(self._sums[0]), math.sqrt(self._sums[1])
        norm_b = norm_b if norm_b > _NORM_EPS else 1.0
        norm_x = norm_x if norm_x > _NORM_EPS else 1.0
        dot = min(1.0, max(-1.0, self._sums[2] / (norm_b * norm_x)))
        if abs(dot) > _COLINEAR_DOT:
            return
        theta = math.acos(dot)
        sin_theta = math.sin(theta)
        self._coefficients = (
            math.sin((1.0 - self._t) * theta) / sin_theta,
            math.sin(self._t * theta) / sin_theta,
        )

    def output(self, base: torch.Tensor | None, tensors: list[torch.Tensor]) -> torch.Tensor:
        assert base is not None
        of_base, of_other = self._coefficients
        return torch.add(of_base * base, tensors[0], alpha=of_other)


@block_merge_method(
    "slerp",
    base="required",
    params=(Param("t", doc="interpolation factor: 0 gives the base, 1 the other model"),),
    summary="spherical interpolation between the base and one other model",
    paper="https://doi.org/10.1145/325165.325242",
    min_models=1,
    max_models=1,
)
def slerp(shape: tuple[int, ...], dtype: torch.dtype, *, t: float) -> Slerp:
    return Slerp(t)
