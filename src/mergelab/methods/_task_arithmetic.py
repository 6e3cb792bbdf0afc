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

import torch

from mergelab.methods._consensus import sign_consensus, sum_consensus
from mergelab.methods._registry import Param
from mergelab.methods._rescale import RESCALE_CHOICES, RESCALE_DOC
from mergelab.methods._sparsify import L1Rescaled, Sparsifier


class TaskVectorMerge:
    """The pipeline of the module docstring as a :class:`~mergelab.methods._blocks.BlockMerge`:
    the passes are the sparsifiers' (thresholds, L1 norms); the output runs steps 1-6 on a
    block. ``sparsifiers`` has one entry per model."""

    def __init__(
        self,
        sparsifiers: list[Sparsifier],
        *,
        weight: list[float],
        sign_election: bool,
        normalize: bool,
        lambda_: float,
    ) -> None:
        self._sparsifiers = sparsifiers
        self._weight = weight
        self._consensus = sign_consensus if sign_election else sum_consensus
        self._normalize = normalize
        self._lambda = lambda_
        self.passes = max((s.passes for s in sparsifiers), default=0)
        # when every sparsifier keeps its output blocks in its last pass, the output pass
        # takes them from there and reads no model again
        held = [s for s in sparsifiers if isinstance(s, L1Rescaled) and s.remembers]
        self._held = held if sparsifiers and len(held) == len(sparsifiers) else None
        self.output_needs_models = self._held is None

    def observe(self, step: int, base: torch.Tensor | None, tensors: list[torch.Tensor]) -> None:
        assert base is not None
        for sparsifier, x in zip(self._sparsifiers, tensors, strict=True):
            if step < sparsifier.passes:
                sparsifier.observe(step, x - base)

    def end_pass(self, step: int) -> None:
        for sparsifier in self._sparsifiers:
            if step < sparsifier.passes:
                sparsifier.end_pass(step)
            sparsifier.restart()

    def output(self, base: torch.Tensor | None, tensors: list[torch.Tensor]) -> torch.Tensor:
        assert base is not None
        if self._held is None:
            deltas = [
                sparsifier.keep(x - base).mul_(w)  # x - base is fresh: kept and scaled in place
                for sparsifier, x, w in zip(self._sparsifiers, tensors, self._weight, strict=True)
            ]
        else:
            held = zip(self._held, self._weight, strict=True)
            deltas = [sparsifier.next_kept().mul_(w) for sparsifier, w in held]
        mixed = self._consensus(deltas, self._weight, self._normalize)  # a fresh tensor
        if self._lambda != 1.0:
            mixed.mul_(self._lambda)
        return mixed.add_(base)


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
