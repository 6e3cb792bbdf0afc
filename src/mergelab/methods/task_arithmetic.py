"""Task arithmetic: add weighted task vectors to the base (Ilharco et al. 2023).

Paper: https://arxiv.org/abs/2212.04089. ``b + lambda * sum_i w_i (x_i - b)``; with
``normalize`` the sum is divided by ``sum_i w_i``. A negative weight subtracts a task
(forgetting). ``density`` and ``rescale`` are accepted because mergekit accepts them; they
change nothing here.
"""

from __future__ import annotations

import torch

from mergelab.methods._registry import block_merge_method
from mergelab.methods._sparsify import Dense
from mergelab.methods._task_arithmetic import TaskVectorMerge, task_params


@block_merge_method(
    "task_arithmetic",
    base="required",
    params=task_params(normalize=False, rescale=False, sparsified=False),
    summary="add weighted task vectors (model - base) to the base",
    paper="https://arxiv.org/abs/2212.04089",
    consensus="sum",
)
def task_arithmetic(
    shape: tuple[int, ...],
    dtype: torch.dtype,
    *,
    weight: list[float],
    density: list[float],
    lambda_: float = 1.0,
    normalize: bool = False,
    rescale: bool | str = False,
    int8_mask: bool = False,
) -> TaskVectorMerge:
    return TaskVectorMerge(
        [Dense() for _ in weight],
        weight=weight,
        sign_election=False,
        normalize=normalize,
        lambda_=lambda_,
    )
