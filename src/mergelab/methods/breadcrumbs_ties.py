"""Model Breadcrumbs sparsification with TIES sign consensus.

Papers: https://arxiv.org/abs/2312.06795, https://arxiv.org/abs/2306.01708. Outliers (top
``gamma``) and small entries are dropped as in ``breadcrumbs``; signs are then elected by
weighted mass and only agreeing entries are summed.
"""

from __future__ import annotations

import math

import torch

from mergelab.methods._registry import block_merge_method
from mergelab.methods._rescale import rescale_mode
from mergelab.methods._sparsify import outliers
from mergelab.methods._task_arithmetic import TaskVectorMerge, task_params


@block_merge_method(
    "breadcrumbs_ties",
    base="required",
    params=task_params(normalize=False, rescale=False, gamma=True),
    summary="breadcrumbs sparsification followed by TIES sign election",
    paper="https://arxiv.org/abs/2312.06795",
    consensus="sign",
)
def breadcrumbs_ties(
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
        sign_election=True,
        normalize=normalize,
        lambda_=lambda_,
    )
