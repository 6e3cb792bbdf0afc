"""DARE with a plain weighted sum: drop entries at random, rescale, add (Yu et al. 2024).

Paper: https://arxiv.org/abs/2311.03099. Each task-vector entry is kept with probability
``density``. The default rescale (``true``/``"l1"``, mergekit's) restores the task vector's
L1 norm; the paper divides the kept entries by ``density``: ``rescale: inverse_density``.
"""

from __future__ import annotations

import torch

from mergelab.methods._registry import merge_method
from mergelab.methods._rescale import rescale_mode
from mergelab.methods._sparsify import random
from mergelab.methods._task_arithmetic import merge_task_vectors, task_params


@merge_method(
    "dare_linear",
    base="required",
    params=task_params(normalize=False, rescale=True),
    summary="drop task-vector entries at random (DARE), rescale, add them to the base",
    paper="https://arxiv.org/abs/2311.03099",
    randomized=True,
)
def dare_linear(
    base: torch.Tensor,
    tensors: list[torch.Tensor],
    *,
    weight: list[float],
    density: list[float],
    lambda_: float = 1.0,
    normalize: bool = False,
    rescale: bool | str = True,
    int8_mask: bool = False,
    generators: list[torch.Generator],
) -> torch.Tensor:
    mode = rescale_mode(rescale)
    return merge_task_vectors(
        base,
        tensors,
        weight=weight,
        sparsify=lambda d, i: random(d, density[i], mode, generators[i]),
        sign_election=False,
        normalize=normalize,
        lambda_=lambda_,
    )
