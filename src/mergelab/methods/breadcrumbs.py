"""Model Breadcrumbs: drop the largest outliers and the small entries, add the rest.

Paper: Davari & Belilovsky 2024, https://arxiv.org/abs/2312.06795. Per task vector, rank by
magnitude, drop the top ``gamma`` fraction, keep the next ``density`` fraction, zero the
rest (when ``density + gamma > 1`` fewer outliers are dropped); then the weighted sum of
task arithmetic.
"""

from __future__ import annotations

import torch

from mergelab.methods._registry import merge_method
from mergelab.methods._rescale import rescale_mode
from mergelab.methods._sparsify import outliers
from mergelab.methods._task_arithmetic import merge_task_vectors, task_params


@merge_method(
    "breadcrumbs",
    base="required",
    params=task_params(normalize=False, rescale=False, gamma=True),
    summary="drop the largest (gamma) and smallest task-vector entries, add the rest",
    paper="https://arxiv.org/abs/2312.06795",
)
def breadcrumbs(
    base: torch.Tensor,
    tensors: list[torch.Tensor],
    *,
    weight: list[float],
    density: list[float],
    gamma: list[float],
    lambda_: float = 1.0,
    normalize: bool = False,
    rescale: bool | str = False,
    int8_mask: bool = False,
) -> torch.Tensor:
    mode = rescale_mode(rescale)
    return merge_task_vectors(
        base,
        tensors,
        weight=weight,
        sparsify=lambda d, i: outliers(d, density[i], gamma[i], mode),
        sign_election=False,
        normalize=normalize,
        lambda_=lambda_,
    )
