"""Data-flow-space genome <-> inference path (Akiba et al., arXiv 2403.13187, Sec. 3.2).

Layout. The models' layers, model by model (A first), form M global layers; repeated r
times they form T = M x r slots, slot ``t = rep M + g``. One gene per slot says whether it
is on; the path is the on slots in slot order, between A's first and last layers when
``fix_ends`` (they are not genes). Genes are floats in [0, 1], as in the parameter space.

Indicators. Slot t is on when its gene exceeds a threshold: ``0.5 - d`` for the slots of A
in the first repeat (``0.5 + d`` for every other slot), ``d = sigma0 Phi^-1(p)`` with
``sigma0 = 1/6`` (optuna's CMA-ES default on [0, 1] genes) and ``p = init_probability``. The
midpoint, CMA-ES's initial mean and the first trial, is therefore A's own path, and the
first generation keeps each of A's layers with probability p and adds each other slot with
probability 1 - p: the paper's "I initialised to favour A's layers". (Deviation: the paper
thresholds at a fixed point; a threshold we place keeps the prior out of the sampler, which
then needs no ``x0``. CMA-ES with margin does not apply: it handles discrete distributions
only, and these genes are continuous.)

Scales, each gene mapped linearly onto ``scale_range`` (``[0.5, 1.5]`` by default, so the
midpoint is 1):

- ``matrix``: the paper's W, M x M genes; the hidden state entering path step k from the
  layer of step k - 1 is multiplied by ``W[g_{k-1}, g_k]``; step 0 (from the embeddings) by 1;
- ``slot``: one gene per slot, multiplying the hidden state entering that slot's layer
  (T genes); the fixed ends take 1;
- ``none``: every scale is 1.

Constraints. A path longer than ``max_length`` (default 2 x A's depth) or using more
distinct source layers than ``layer_budget`` is *repaired*: walking the on slots in order,
a slot that would break a limit is switched off (so the path keeps its earliest layers).
An empty path (``fix_ends: false`` and no slot on) is *rejected*: decoding raises, and the
trial is recorded as failed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from optuna.distributions import BaseDistribution, FloatDistribution

from mergelab.errors import SearchError
from mergelab.evolve.dfs.config import DfsSpec

SIGMA0 = 1.0 / 6.0  # optuna's CMA-ES sigma0 for genes in [0, 1]
DECIMALS = 6


@dataclass(frozen=True)
class Slot:
    """Slot ``index``: layer ``layer`` of model ``model`` in repeat ``repeat``."""

    index: int
    repeat: int
    model: int
    layer: int


@dataclass(frozen=True)
class Step:
    """One layer of a path and the factor on the hidden state entering it."""

    model: int
    layer: int
    scale: float
    slot: int | None  # None for a fixed end


@dataclass(frozen=True)
class DfsPath:
    """A decoded path; ``repaired`` on slots were switched off to respect the limits."""

    steps: tuple[Step, ...]
    repaired: int = 0


class DfsGenome:
    """The genes of a DFS block over models of depths ``depths`` named ``labels``."""

    def __init__(self, spec: DfsSpec, labels: Sequence[str], depths: Sequence[int]) -> None:
        self.spec = spec
        self.labels = list(labels)
        self.depths = list(depths)
        offsets = [sum(self.depths[:m]) for m in range(len(self.depths))]
        self.width = sum(self.depths)  # M
        self.slots = [
            Slot(rep * self.width + offsets[m] + i, rep, m, i)
            for rep in range(spec.repeats)
            for m, depth in enumerate(self.depths)
            for i in range(depth)
        ]
        self._glob = [(m, i) for m, depth in enumerate(self.depths) for i in range(depth)]
        self._glob_of = {layer: g for g, layer in enumerate(self._glob)}
        self.limit = spec.max_length or 2 * self.depths[0]
        shift = SIGMA0 * NormalDist().inv_cdf(spec.init_probability)
        self.thresholds = [
            0.5 - shift if self._favoured(slot) else 0.5 + shift for slot in self.slots
        ]

    def _favoured(self, slot: Slot) -> bool:
        """A's layers in the first repeat, less the fixed ends (they are always there)."""
        if slot.model != 0 or slot.repeat != 0:
            return False
        return not (self.spec.fix_ends and slot.layer in (0, self.depths[0] - 1))

    # -- genes ------------------------------------------------------------------------------
    def on_gene(self, slot: Slot) -> str:
        return f"on[{self.labels[slot.model]}.{slot.layer}]@r{slot.repeat}"

    def scale_genes(self) -> list[str]:
        """The scale genes, in a fixed order (none for ``scaling: none``)."""
        if self.spec.scaling == "slot":
            return [self._slot_gene(s) for s in self.slots]
        if self.spec.scaling == "matrix":
            return [self._matrix_gene(i, j) for i in range(self.width) for j in range(self.width)]
        return []

    def _slot_gene(self, slot: Slot) -> str:
        return f"scale[{self.labels[slot.model]}.{slot.layer}]@r{slot.repeat}"

    def _matrix_gene(self, i: int, j: int) -> str:
        (mi, li), (mj, lj) = self._glob[i], self._glob[j]
        return f"W[{self.labels[mi]}.{li}>{self.labels[mj]}.{lj}]"

    def names(self) -> list[str]:
        return [self.on_gene(s) for s in self.slots] + self.scale_genes()

    def distributions(self) -> dict[str, BaseDistribution]:
        """Every gene as a float in [0, 1]."""
        return {name: FloatDistribution(0.0, 1.0) for name in self.names()}

    def midpoint(self) -> dict[str, float]:
        """The centre of the box: A's own path, scales at the range's midpoint."""
        return dict.fromkeys(self.names(), 0.5)

    def scale(self, x: float) -> float:
        low, high = self.spec.scale_range
        x = min(1.0, max(0.0, float(x)))
        return round(low + x * (high - low), DECIMALS)

    # -- decoding ---------------------------------------------------------------------------
    def decode(self, params: Mapping[str, Any]) -> DfsPath:
        """The path of a trial's genes (every gene must be present); see the module docstring."""
        on = [
            slot
            for slot, threshold in zip(self.slots, self.thresholds, strict=True)
            if float(params[self.on_gene(slot)]) > threshold
        ]
        first, last = (0, 0), (0, self.depths[0] - 1)
        ends = [first, last] if self.spec.fix_ends else []
        budget = self.spec.layer_budget
        used = set(ends)
        kept: list[Slot] = []
        for slot in on:
            layer = (slot.model, slot.layer)
            over_length = len(kept) + len(ends) >= self.limit
            over_budget = budget is not None and layer not in used and len(used) >= budget
            if not (over_length or over_budget):
                kept.append(slot)
                used.add(layer)
        if not kept and not ends:
            raise SearchError(
                "the path is empty (no slot is on) and was rejected; with fix_ends: false "
                "a path needs at least one slot on"
            )
        path: list[tuple[int, int, Slot | None]] = [(s.model, s.layer, s) for s in kept]
        if self.spec.fix_ends:
            path = [(*first, None), *path, (*last, None)]
        steps = []
        previous: int | None = None
        for model, layer_index, source in path:
            glob = self._glob_of[(model, layer_index)]
            scale = self._scale(params, previous, glob, source)
            steps.append(Step(model, layer_index, scale, None if source is None else source.index))
            previous = glob
        return DfsPath(tuple(steps), repaired=len(on) - len(kept))

    def _scale(
        self, params: Mapping[str, Any], previous: int | None, glob: int, slot: Slot | None
    ) -> float:
        """The factor entering a step at global layer ``glob`` after ``previous``."""
        if self.spec.scaling == "matrix" and previous is not None:
            return self.scale(params[self._matrix_gene(previous, glob)])
        if self.spec.scaling == "slot" and slot is not None:
            return self.scale(params[self._slot_gene(slot)])
        return 1.0

    def describe(self, path: DfsPath) -> list[str]:
        """One readable line per step: ``label.layer``, then ``x scale`` when not 1."""
        return [
            f"{self.labels[s.model]}.{s.layer}" + (f" x{s.scale:g}" if s.scale != 1.0 else "")
            for s in path.steps
        ]
