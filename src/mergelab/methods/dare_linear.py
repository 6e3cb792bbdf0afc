"""DARE with a plain weighted sum: drop entries at random, rescale, add (Yu et al. 2024).

Paper: https://arxiv.org/abs/2311.03099. Each task-vector entry is kept with probability
``density``. The default rescale (``true``/``"l1"``, mergekit's) restores the task vector's
L1 norm; the paper divides the kept entries by ``density``: ``rescale: inverse_density``.
"""

from __future__ import annotations

import math

import torch

from mergelab.methods._registry import block_merge_method
from mergelab.methods._rescale import rescale_mode
from mergelab.methods._sparsify import random
from mergelab.methods._task_arithmetic import TaskVectorMerge, task_params


@block_merge_method(
    "dare_linear",
    base="required",
    params=task_params(normalize=False, rescale=True),
    summary="drop task-vector entries at random (DARE), rescale, add them to the base",
    paper="https://arxiv.org/abs/2311.03099",
    randomized=True,
    consensus="sum",
)
def dare_linear(
    shape: tuple[int, ...],
    dtype: torch.dtype,
    *,
    weight: list[float],
    density: list[float],
    lambda_: float = 1.0,
    normalize: bool = False,
    rescale: bool | str = True,
    int8_mask: bool = False,
    generators: list[torch.Generator],
) -> TaskVectorMerge:
    mode, numel = rescale_mode(rescale), math.prod(shape)
    return TaskVectorMerge(
        [random(numel, d, mode, g) for d, g in zip(density, generators, strict=True)],
        weight=weight,
        sign_election=False,
        normalize=normalize,
        lambda_=lambda_,
    )
