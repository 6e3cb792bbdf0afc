"""Karcher mean: the Riemannian centre of mass of the models' directions on the unit sphere.

Karcher 1977, "Riemannian center of mass and mollifier smoothing",
https://doi.org/10.1002/cpa.3160300502 (mergekit's ``karcher`` method).
Directions ``u_i = x_i / |x_i|`` (flattened; norms <= ``tol`` are left out) with uniform
weights ``a``; start at ``normalise(sum a u_i)``; iterate the gradient step
``g = sum_i a theta_i / sin(theta_i) (u_i - cos(theta_i) m)``, ``theta_i = acos(<m, u_i>)``,
``m <- cos|g| m + sin|g| g / |g|`` until ``|g| < tol`` or ``max_iter`` steps. Result
``m * mean_i |x_i|``. Antipodal directions (``sin(theta_i) < tol``) add no step: their
geodesic is not unique. The base model is not an input.
"""

from __future__ import annotations

import math

import torch

from mergelab.methods._registry import Param, merge_method


@merge_method(
    "karcher",
    base="ignored",
    params=(
        Param("max_iter", kind="int", default=10, doc="most gradient steps", low=1),
        Param("tol", default=1e-5, doc="stop when the step norm is below this", low=0.0),
    ),
    summary="Riemannian (Karcher) mean of the models' directions, scaled by the mean norm",
    paper="https://doi.org/10.1002/cpa.3160300502",
)
def karcher(
    base: torch.Tensor | None,
    tensors: list[torch.Tensor],
    *,
    max_iter: int = 10,
    tol: float = 1e-5,
) -> torch.Tensor:
    if len(tensors) == 1:
        return tensors[0]
    flat = [x.reshape(-1) for x in tensors]  # (n,) each
    norms = [float(torch.linalg.vector_norm(x)) for x in flat]
    scale = sum(norms) / len(norms)  # mean norm, zero-norm inputs included
    units = [x / norm for x, norm in zip(flat, norms, strict=True) if norm > tol]
    if not units:
        return torch.zeros_like(tensors[0])
    a = 1.0 / len(units)
    mean = units[0] * a
    for u in units[1:]:
        mean += u * a
    mean_norm = float(torch.linalg.vector_norm(mean))
    m = units[0].clone() if mean_norm < tol else mean / mean_norm
    for _ in range(max_iter):
        step = torch.zeros_like(m)
        for u in units:
            cos = min(1.0, max(-1.0, float(torch.dot(m, u))))
            theta = math.acos(cos)
            if theta < tol or math.sin(theta) < tol:
                continue
            step += (a * theta / math.sin(theta)) * (u - cos * m)  # log map of u at m
        step_norm = float(torch.linalg.vector_norm(step))
        if step_norm < tol:
            break
        m = math.cos(step_norm) * m + (math.sin(step_norm) / step_norm) * step  # exp map
        m = m / torch.linalg.vector_norm(m)
    return (m * scale).reshape(tensors[0].shape)
