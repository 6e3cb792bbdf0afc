"""Task-vector diagnostics as running sums, so tensors, layers and whole models aggregate alike.

For task vectors ``tau_i = theta_i - theta_base`` over a group of entries (a tensor, a layer,
the model):

- norm ``||tau||_2`` and relative change ``||tau|| / ||theta_base||``;
- sparsity: the fraction of entries with ``|tau| < eps`` (unchanged by the fine-tune);
- cosine ``<tau_a, tau_b> / (||tau_a|| ||tau_b||)`` (Ilharco et al. 2023 report task vectors
  of different tasks to be nearly orthogonal, https://arxiv.org/abs/2212.04089);
- sign-conflict rate: among entries both vectors change (``|tau| >= eps`` in both), the
  fraction with opposite signs (the interference TIES-Merging resolves by sign election,
  Yadav et al. 2023, https://arxiv.org/abs/2306.01708); independent random changes give 0.5;
- top-k overlap: the Jaccard index ``|K_a & K_b| / |K_a | K_b|`` of each vector's top-k
  entries by magnitude (``k = max(1, int(top_k * n))`` per tensor, changed entries only);
  two independent random top-10% sets give about 0.053 (``0.1 / 1.9``).

Deviation: a group's top-k overlap sums intersections and unions of per-tensor top-k sets
(the k largest of each tensor), not a top-k over the whole group, so one tensor with large
values cannot claim a layer's whole budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from mergelab.methods._select import top_k_mask


@dataclass
class VectorSums:
    """Running sums of one task vector over a group of entries."""

    sq_tau: float = 0.0  # sum tau^2
    sq_base: float = 0.0  # sum theta_base^2
    small: int = 0  # entries with |tau| < eps
    numel: int = 0

    def add(self, other: VectorSums) -> None:
        self.sq_tau += other.sq_tau
        self.sq_base += other.sq_base
        self.small += other.small
        self.numel += other.numel

    def row(self) -> dict[str, float | None]:
        return {
            "norm": math.sqrt(self.sq_tau),
            "relative_change": _ratio(math.sqrt(self.sq_tau), math.sqrt(self.sq_base)),
            "sparsity": _ratio(self.small, self.numel),
        }


@dataclass
class PairSums:
    """Running sums of two task vectors over a group of entries."""

    dot: float = 0.0
    sq_a: float = 0.0
    sq_b: float = 0.0
    both: int = 0  # entries changed by both
    conflict: int = 0  # ... with opposite signs
    inter: int = 0  # |K_a & K_b|
    union: int = 0  # |K_a | K_b|

    def add(self, other: PairSums) -> None:
        for key in vars(self):
            setattr(self, key, getattr(self, key) + getattr(other, key))

    def row(self) -> dict[str, float | None]:
        return {
            "cosine": _ratio(self.dot, math.sqrt(self.sq_a * self.sq_b)),
            "sign_conflict": _ratio(self.conflict, self.both),
            "topk_jaccard": _ratio(self.inter, self.union),
        }


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def vector_sums(tau: torch.Tensor, base: torch.Tensor, eps: float) -> VectorSums:
    t = tau.double()
    return VectorSums(
        sq_tau=float((t * t).sum()),
        sq_base=float((base.double() ** 2).sum()),
        small=int((tau.abs() < eps).sum()),
        numel=tau.numel(),
    )


def top_k(tau: torch.Tensor, fraction: float, eps: float) -> torch.Tensor:
    """Mask of the ``max(1, int(fraction * n))`` largest ``|tau|`` among changed entries."""
    scores = tau.abs()
    k = max(1, int(fraction * tau.numel()))
    return top_k_mask(scores, k) & (scores >= eps)


def pair_sums(
    a: torch.Tensor, b: torch.Tensor, top_a: torch.Tensor, top_b: torch.Tensor, eps: float
) -> PairSums:
    da, db = a.double(), b.double()
    changed = (a.abs() >= eps) & (b.abs() >= eps)
    return PairSums(
        dot=float((da * db).sum()),
        sq_a=float((da * da).sum()),
        sq_b=float((db * db).sum()),
        both=int(changed.sum()),
        conflict=int((changed & (torch.sign(a) != torch.sign(b))).sum()),
        inter=int((top_a & top_b).sum()),
        union=int((top_a | top_b).sum()),
    )
