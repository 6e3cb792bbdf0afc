"""Model Breadcrumbs: drop the largest outliers and the small entries, add the rest.

Paper: Davari & Belilovsky 2024, https://arxiv.org/abs/2312.06795. Per task vector, rank by
magnitude, drop the top ``gamma`` fraction, keep the next ``density`` fraction, zero the
rest (when ``density + gamma > 1`` fewer outliers are dropped); then the weighted sum of
task arithmetic.
"""

from __future__ import annotations

import math

import torch

from mergelab.methods._registry import block_merge_method
from mergelab.methods._rescale import rescale_mode
from mergelab.methods._sparsify import outliers
from mergelab.methods._task_arithmetic import TaskVectorMerge, task_params


@block_merge_method(
    "breadcrumbs",
    base="required",
    params=task_params(normalize=False, rescale=False, gamma=True),
    summary="drop the largest (gamma) and smallest task-vector entries, add the rest",
    paper="https://arxiv.org/abs/2312.06795",
    consensus="sum",
)
def breadcrumbs(
    shape: tuple[int, ...],
    dtype: torch.dtype,
    *,
    weight: list[float],
    density: list[float],
    gamma: list[float],
    lambda_: float = 1.0,
    normalize: bool = False,
    rescale: bool | str = False,
    int8_mask: bool = False,
) -> TaskVectorMerge:
    mode = rescale_mode(rescale)
    return TaskVectorMerge(
        [
            outliers(math.prod(shape), d, g, mode, dtype)
            for d, g in zip(density, gamma, strict=True)
        ],
        weight=weight,
        sign_election=False,
        normalize=normalize,
        lambda_=lambda_,
    )
