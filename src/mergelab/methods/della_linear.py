"""DELLA sparsification with a plain weighted sum (no sign election).

Paper: Deep et al. 2024, https://arxiv.org/abs/2406.11617. Same magnitude-ranked random
drop as ``della``; the surviving, rescaled task vectors are weighted and added to the base.
"""

from __future__ import annotations

import math

import torch

from mergelab.methods._registry import block_merge_method
from mergelab.methods._rescale import rescale_mode
from mergelab.methods._sparsify import della, della_problems
from mergelab.methods._task_arithmetic import TaskVectorMerge, task_params


@block_merge_method(
    "della_linear",
    base="required",
    params=task_params(normalize=False, rescale=True, epsilon=True),
    summary="drop entries with magnitude-ranked probabilities (DELLA), add them to the base",
    paper="https://arxiv.org/abs/2406.11617",
    randomized=True,
    validate=della_problems,
    consensus="sum",
)
def della_linear(
    shape: tuple[int, ...],
    dtype: torch.dtype,
    *,
    weight: list[float],
    density: list[float],
    epsilon: list[float],
    lambda_: float = 1.0,
    normalize: bool = False,
    rescale: bool | str = True,
    int8_mask: bool = False,
    generators: list[torch.Generator],
) -> TaskVectorMerge:
    mode, numel = rescale_mode(rescale), math.prod(shape)
    return TaskVectorMerge(
        [della(numel, d, e, mode, g) for d, e, g in zip(density, epsilon, generators, strict=True)],
        weight=weight,
        sign_election=False,
        normalize=normalize,
        lambda_=lambda_,
    )
