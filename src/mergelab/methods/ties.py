"""TIES-Merging: trim, elect sign, disjoint merge (Yadav et al. 2023, Alg. 1).

Paper: https://arxiv.org/abs/2306.01708. Trim keeps each task vector's largest-magnitude
``density`` fraction; the sign is elected by weighted mass; agreeing entries are averaged.
Deviation from the paper (as in mergekit): per-model weights scale the task vectors and the
mean divides by the agreeing models' summed weights, not their count.
"""

from __future__ import annotations

import math

import torch

from mergelab.methods._registry import block_merge_method
from mergelab.methods._rescale import rescale_mode
from mergelab.methods._sparsify import magnitude
from mergelab.methods._task_arithmetic import TaskVectorMerge, task_params


@block_merge_method(
    "ties",
    base="required",
    params=task_params(normalize=True, rescale=False),
    summary="trim task vectors by magnitude, elect signs by mass, average the agreeing ones",
    paper="https://arxiv.org/abs/2306.01708",
    consensus="sign",
)
def ties(
    shape: tuple[int, ...],
    dtype: torch.dtype,
    *,
    weight: list[float],
    density: list[float],
    lambda_: float = 1.0,
    normalize: bool = True,
    rescale: bool | str = False,
    int8_mask: bool = False,
) -> TaskVectorMerge:
    mode = rescale_mode(rescale)
    return TaskVectorMerge(
        [magnitude(math.prod(shape), d, mode, dtype) for d in density],
        weight=weight,
        sign_election=True,
        normalize=normalize,
        lambda_=lambda_,
    )
