"""DARE sparsification with TIES sign consensus (Yu et al. 2024; Yadav et al. 2023).

Papers: https://arxiv.org/abs/2311.03099, https://arxiv.org/abs/2306.01708. Entries are kept
with probability ``density`` and rescaled (default L1, ``rescale: inverse_density`` for the
paper's ``1 / density``), then signs are elected by weighted mass and the agreeing entries
summed (divided by the agreeing weights only with ``normalize``).
"""

from __future__ import annotations

import math

import torch

from mergelab.methods._registry import block_merge_method
from mergelab.methods._rescale import rescale_mode
from mergelab.methods._sparsify import random
from mergelab.methods._task_arithmetic import TaskVectorMerge, task_params


@block_merge_method(
    "dare_ties",
    base="required",
    params=task_params(normalize=False, rescale=True),
    summary="drop task-vector entries at random (DARE), rescale, merge with TIES sign election",
    paper="https://arxiv.org/abs/2311.03099",
    randomized=True,
    consensus="sign",
)
def dare_ties(
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
        sign_election=True,
        normalize=normalize,
        lambda_=lambda_,
    )
