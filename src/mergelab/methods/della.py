"""DELLA-Merging: magnitude-ranked random drop, then TIES sign election (Deep et al. 2024).

Paper: https://arxiv.org/abs/2406.11617. Per row (last dimension), entry of magnitude rank
``r`` (0 = smallest) is kept with ``p = (density - epsilon) + 2 epsilon r / (row_len - 1)``.
Default rescale (mergekit's ``true``/``"l1"``) restores the task vector's L1 norm; the
paper's ``1 / p`` is ``rescale: inverse_density``. Needs ``0 < density - epsilon`` and
``density + epsilon < 1`` (unless density is 1, which keeps everything).
"""

from __future__ import annotations

import math

import torch

from mergelab.methods._registry import block_merge_method
from mergelab.methods._rescale import rescale_mode
from mergelab.methods._sparsify import della as della_sparsify
from mergelab.methods._sparsify import della_problems
from mergelab.methods._task_arithmetic import TaskVectorMerge, task_params


@block_merge_method(
    "della",
    base="required",
    params=task_params(normalize=True, rescale=True, epsilon=True),
    summary="drop entries with magnitude-ranked probabilities (DELLA), TIES sign election",
    paper="https://arxiv.org/abs/2406.11617",
    randomized=True,
    validate=della_problems,
    consensus="sign",
)
def della(
    shape: tuple[int, ...],
    dtype: torch.dtype,
    *,
    weight: list[float],
    density: list[float],
    epsilon: list[float],
    lambda_: float = 1.0,
    normalize: bool = True,
    rescale: bool | str = True,
    int8_mask: bool = False,
    generators: list[torch.Generator],
) -> TaskVectorMerge:
    mode, numel = rescale_mode(rescale), math.prod(shape)
    return TaskVectorMerge(
        [
            della_sparsify(numel, d, e, mode, g)
            for d, e, g in zip(density, epsilon, generators, strict=True)
        ],
        weight=weight,
        sign_election=True,
        normalize=normalize,
        lambda_=lambda_,
    )
