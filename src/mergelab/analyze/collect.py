"""The streaming pass: read one tensor of the base and of each fine-tune, measure, move on.

Memory holds one tensor per model (plus masks), never a whole model. Every tensor's sums are
added into its layer's (``pre`` for embeddings, ``0..L-1``, ``post`` for the final norm and
head, by :mod:`mergelab.arch`) and the model's, so the three levels agree by construction.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mergelab import arch
from mergelab.analyze.metrics import PairSums, VectorSums, pair_sums, top_k, vector_sums
from mergelab.checkpoint import Checkpoint
from mergelab.errors import ConfigError, PlanError, join_problems
from mergelab.progress import progress

log = logging.getLogger(__name__)


@dataclass
class _Group:
    vectors: list[VectorSums]
    pairs: list[PairSums]

    @classmethod
    def empty(cls, models: int) -> _Group:
        n_pairs = models * (models - 1) // 2
        return cls([VectorSums() for _ in range(models)], [PairSums() for _ in range(n_pairs)])

    def add(self, other: _Group) -> None:
        for mine, theirs in zip(self.vectors, other.vectors, strict=True):
            mine.add(theirs)
        for p, q in zip(self.pairs, other.pairs, strict=True):
            p.add(q)


@dataclass
class Analysis:
    """Diagnostics per tensor, per layer and for the whole model (rows of plain numbers)."""

    base: str
    models: list[str]
    pairs: list[tuple[str, str]]
    eps: float
    top_k: float
    tensors: list[dict[str, Any]] = field(default_factory=list)
    layers: list[dict[str, Any]] = field(default_factory=list)
    total: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "models": self.models,
            "pairs": [f"{a} vs {b}" for a, b in self.pairs],
            "eps": self.eps,
            "top_k": self.top_k,
            "total": self.total,
            "layers": self.layers,
            "tensors": self.tensors,
        }


def display_names(refs: Sequence[str]) -> list[str]:
    """Folder names (``zoo/m1`` -> ``m1``), or the references as given when those clash."""
    short = [Path(r).name or r for r in refs]
    return short if len(set(short)) == len(short) else [str(r) for r in refs]


def collect(
    base: str | Path,
    finetunes: Sequence[str | Path],
    *,
    eps: float = 1e-6,
    top_k_fraction: float = 0.1,
) -> Analysis:
    """Measure the task vectors ``finetune - base`` of every fine-tune (streaming)."""
    if not finetunes:
        raise ConfigError("give at least one fine-tune to analyze after the base")
    if not 0.0 < top_k_fraction <= 1.0:
        raise ConfigError(f"top-k fraction {top_k_fraction} is outside (0, 1]; e.g. 0.1")
    if not eps >= 0.0:
        raise ConfigError(f"eps {eps} is negative; give a small threshold such as 1e-6")
    names = display_names([str(f) for f in finetunes])
    pairs = list(itertools.combinations(range(len(names)), 2))
    base_ckpt = Checkpoint.open(str(base))
    fts: list[Checkpoint] = []
    try:
        for ref in finetunes:
            fts.append(Checkpoint.open(str(ref)))
        _check_homologous(base_ckpt, fts, [str(f) for f in finetunes], str(base))
        result = Analysis(
            str(base), names, [(names[a], names[b]) for a, b in pairs], eps, top_k_fraction
        )
        layers: dict[str, _Group] = {}
        total = _Group.empty(len(names))
        with progress("analyzing", len(base_ckpt.tensors)) as bar:
            for name in base_ckpt.tensors:
                group = _measure(name, base_ckpt, fts, pairs, eps, top_k_fraction)
                label = _layer_label(name)
                layers.setdefault(label, _Group.empty(len(names))).add(group)
                total.add(group)
                row = _row(group, result)
                result.tensors.append({"tensor": name, "layer": label, **row})
                bar.advance(1)
        for label in sorted(layers, key=_layer_order):
            result.layers.append({"layer": label, **_row(layers[label], result)})
        result.total = _row(total, result)
        return result
    finally:
        base_ckpt.close()
        for ckpt in fts:
            ckpt.close()


def _check_homologous(
    base: Checkpoint, fts: list[Checkpoint], refs: list[str], base_ref: str
) -> None:
    want = {n: i.shape for n, i in base.tensors.items()}
    problems = []
    for ref, ckpt in zip(refs, fts, strict=True):
        have = {n: i.shape for n, i in ckpt.tensors.items()}
        if have != want:
            odd = sorted(set(have.items()) ^ set(want.items()))
            example = f" (e.g. {odd[0][0]})" if odd else ""
            problems.append(f"{ref} has other tensors or shapes than {base_ref}{example}")
    if problems:
        raise PlanError(join_problems("the models are not fine-tunes of one base", problems))


def _measure(
    name: str,
    base: Checkpoint,
    fts: list[Checkpoint],
    pairs: list[tuple[int, int]],
    eps: float,
    fraction: float,
) -> _Group:
    b = base.read(name).to(torch.float32)
    taus = [ft.read(name).to(torch.float32) - b for ft in fts]  # tau_i, shape of the tensor
    tops = [top_k(t, fraction, eps) for t in taus]
    return _Group(
        [vector_sums(t, b, eps) for t in taus],
        [pair_sums(taus[i], taus[j], tops[i], tops[j], eps) for i, j in pairs],
    )


def _row(group: _Group, result: Analysis) -> dict[str, Any]:
    return {
        "models": {m: v.row() for m, v in zip(result.models, group.vectors, strict=True)},
        "pairs": {
            f"{a} vs {b}": p.row() for (a, b), p in zip(result.pairs, group.pairs, strict=True)
        },
        "numel": group.vectors[0].numel,
    }


def _layer_label(name: str) -> str:
    index = arch.layer_index(name)
    return str(index) if index is not None else arch.position(name)


def _layer_order(label: str) -> tuple[int, int]:
    if label == "pre":
        return (0, 0)
    if label == "post":
        return (2, 0)
    return (1, int(label))
