"""The shared pipeline of the task-arithmetic family, and the parameters its methods declare.

Task arithmetic (Ilharco et al. 2023, https://arxiv.org/abs/2212.04089) generalised the way
mergekit 0.1.5 does, so that TIES, DARE, Model Breadcrumbs and DELLA are one pipeline that
differs only in its sparsifier and its consensus:

1. ``d_i = x_i - b``                      task vectors, each of ``b``'s shape
2. ``d_i = sparsify_i(d_i)``              the method's sparsifier (``_sparsify``), rescaled
3. ``d_i = w_i d_i``
4. consensus (``_consensus``):  sign: ``mixed = sum_i mask_i d_i``, ``divisor = sum_i mask_i w_i``
                                none: ``mixed = sum_i d_i``,        ``divisor = sum_i w_i``
5. ``mixed /= divisor`` when ``normalize``
6. result ``b + lambda * mixed``
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from mergelab.methods._consensus import sign_consensus, sum_consensus
from mergelab.methods._registry import Param
from mergelab.methods._rescale import RESCALE_CHOICES, RESCALE_DOC

# (task vector of model i, i) -> its sparsified task vector, same shape
Sparsifier = Callable[[torch.Tensor, int], torch.Tensor]


def merge_task_vectors(
    base: torch.Tensor,
    tensors: list[torch.Tensor],
    *,
    weight: list[float],
    sparsify: Sparsifier | None,
    sign_election: bool,
    normalize: bool,
    lambda_: float,
) -> torch.Tensor:
    """Run the pipeline of the module docstring; the result has ``base``'s shape."""
    deltas = []
    for i, (x, w) in enumerate(zip(tensors, weight, strict=True)):
        d = x - base
        if sparsify is not None:
            d = sparsify(d, i)
        deltas.append(d.mul_(w))  # d is fresh (x - base or a sparsifier's output)
    consensus = sign_consensus if sign_election else sum_consensus
    mixed, divisor = consensus(deltas, weight)
    if normalize:
        mixed = mixed / divisor
    return base + lambda_ * mixed


def task_params(
    *,
    normalize: bool,
    rescale: bool,
    sparsified: bool = True,
    gamma: bool = False,
    epsilon: bool = False,
) -> tuple[Param, ...]:
    """The parameters of one family member, with its defaults (``spec/methods.md`` table)."""
    density_doc = "fraction of each task vector's entries to keep (1.0 keeps all)"
    rescale_doc = RESCALE_DOC
    if not sparsified:
        density_doc = "accepted for compatibility; task_arithmetic keeps every entry"
        rescale_doc = "accepted for compatibility; task_arithmetic drops no entry to rescale"
    params = [
        Param("weight", per_model=True, doc="scale w_i of the model's task vector (may be < 0)"),
        Param("density", default=1.0, per_model=True, doc=density_doc, low=0.0, high=1.0),
    ]
    if gamma:
        params.append(
            Param(
                "gamma",
                default=0.01,
                per_model=True,
                doc="fraction of largest-magnitude entries dropped as outliers",
                low=0.0,
                high=1.0,
            )
        )
    if epsilon:
        params.append(
            Param(
                "epsilon",
                default=0.15,
                per_model=True,
                doc="spread of keep probabilities: density -/+ epsilon from smallest to largest",
                low=0.0,
                high=0.5,
            )
        )
    params += [
        Param("lambda", default=1.0, doc="scale of the merged task vector added to the base"),
        Param("normalize", kind="bool", default=normalize, doc="divide by the summed weights"),
        Param(
            "rescale",
            kind="bool_or_str",
            default=rescale,
            doc=rescale_doc,
            choices=RESCALE_CHOICES,
        ),
        Param(
            "int8_mask",
            kind="bool",
            default=False,
            doc="accepted for mergekit compatibility; changes no result",
        ),
    ]
    return tuple(params)
