"""DARE sparsification with TIES sign consensus (Yu et al. 2024; Yadav et al. 2023).

Papers: https://arxiv.org/abs/2311.03099, https://arxiv.org/abs/2306.01708. Entries are kept
with probability ``density`` and rescaled (default L1, ``rescale: inverse_density`` for the
paper's ``1 / density``), then signs are elected by weighted mass and the agreeing entries
summed (divided by the agreeing weights only with ``normalize``).
"""

from __future__ import annotations

import torch

from mergelab.methods._registry import merge_method
from mergelab.methods._rescale import rescale_mode
from mergelab.methods._sparsify import random
from mergelab.methods._task_arithmetic import merge_task_vectors, task_params


@merge_method(
    "dare_ties",
    base="required",
    params=task_params(normalize=False, rescale=True),
    summary="drop task-vector entries at random (DARE), rescale, merge with TIES sign election",
    paper="https://arxiv.org/abs/2311.03099",
    randomized=True,
)
def dare_ties(
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
        sign_election=True,
        normalize=normalize,
        lambda_=lambda_,
    )
