"""Parameter-space genome <-> merge recipe (Akiba et al., arXiv 2403.13187, Sec. 3.1).

Genes are normalised to [0, 1], as in the paper, and mapped to each parameter's range:

    value = round(low + x (high - low), 6)          x = the gene, clipped to [0, 1]

One gene per (layer group, evolved parameter, source model) for per-model parameters
(weight, density, ...), one per (group, parameter) for global ones (t, lambda, ...). A genome
decodes to a standard mergelab recipe: each evolved parameter becomes a list of
``{filter, value}`` items, one per filter of each group (a plain number for ``global``), so
``mergelab merge`` on the written recipe rebuilds the very model a trial evaluated.
Deviation: values are rounded to 6 decimals so recipes stay readable; the rounding is part of
the fitness function, so the search sees exactly what it evaluates.

Genes that cannot change the merged model do not evolve (an addition of ours): where a
source's tensors all equal the base's in a group (a fine-tune that left those layers alone),
the task-arithmetic family ignores that source's inert parameters there
(:meth:`~mergelab.methods.MergeMethod.inert_for_base_copies`), and a group that no source
changed merges to the base whatever its genes. Such genes stay at the midpoint in the
recipe; the search explores only the others, which is what a budget of trials buys.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optuna.distributions import BaseDistribution, FloatDistribution

from mergelab.evolve.config import EvolveConfig
from mergelab.evolve.groups import Group
from mergelab.evolve.space import Candidate, GeneTable
from mergelab.methods import get_method
from mergelab.recipe import Recipe

DECIMALS = 6


@dataclass(frozen=True)
class Gene:
    """One evolved number: ``param`` of source ``model`` (None: a global param) in ``group``."""

    name: str
    param: str
    group: int
    model: int | None
    low: float
    high: float
    evolves: bool = True

    def value(self, x: float) -> float:
        x = min(1.0, max(0.0, float(x)))
        return round(self.low + x * (self.high - self.low), DECIMALS)


def model_labels(refs: Sequence[str]) -> list[str]:
    """Short names of the sources for gene names: folder names when unique, else the refs."""
    names = [Path(r.split("+")[0]).name or r for r in refs]
    return names if len(set(names)) == len(names) else list(refs)


class Genome:
    """The genes of a config over ``groups`` and how they decode into a recipe."""

    def __init__(
        self,
        config: EvolveConfig,
        groups: Sequence[Group],
        base_copies: Collection[tuple[int, int]] = (),
    ) -> None:
        """``base_copies``: the (source, group) pairs whose tensors all equal the base's."""
        self.config = config
        self.groups = list(groups)
        method = get_method(config.ps_method)
        inert = method.inert_for_base_copies(config.parameters)
        copies = set(base_copies)
        sources = range(len(config.models))
        untouched = {g for g in range(len(self.groups)) if all((m, g) in copies for m in sources)}
        labels = model_labels(config.models)
        genes: list[Gene] = []
        for g, group in enumerate(self.groups):
            where = "" if config.ps_genome.granularity == "global" else f"@{group.label}"
            fixed_group = method.consensus is not None and g in untouched
            for param, (low, high) in config.ps_genome.parameters.items():
                spec = method.param(param)
                if spec is not None and spec.per_model:
                    genes += [
                        Gene(
                            f"{param}[{label}]{where}",
                            param,
                            g,
                            m,
                            low,
                            high,
                            evolves=not (fixed_group or (param in inert and (m, g) in copies)),
                        )
                        for m, label in enumerate(labels)
                    ]
                else:
                    name = f"{param}{where}"
                    genes.append(Gene(name, param, g, None, low, high, evolves=not fixed_group))
        self.genes = genes
        self.evolved = [g for g in genes if g.evolves]
        self._by_slot = {(g.param, g.model, g.group): g for g in genes}

    def gene(self, param: str, model: int | None, group: int) -> Gene:
        """The gene of ``param`` for source ``model`` (None: global param) in ``group``."""
        return self._by_slot[(param, model, group)]

    def distributions(self) -> dict[str, BaseDistribution]:
        """Every evolved gene as a float in [0, 1]."""
        return {gene.name: FloatDistribution(0.0, 1.0) for gene in self.evolved}

    def midpoint(self) -> dict[str, float]:
        """The centre of the normalised box, the paper's CMA-ES mean."""
        return {gene.name: 0.5 for gene in self.evolved}

    def source_point(self, model: int) -> dict[str, float] | None:
        """Genes that rebuild source ``model`` alone: its weight 1, the others' 0, density 1.

        None when the genome does not evolve per-model weights or a range excludes those
        values. (Exact for the task-arithmetic family and ``linear``; other genes sit at the
        midpoint.)
        """
        if not any(g.param == "weight" and g.model is not None for g in self.genes):
            return None
        point = {}
        for gene in self.evolved:
            if gene.param == "weight" and gene.model is not None:
                target = 1.0 if gene.model == model else 0.0
            elif gene.param == "density":
                target = 1.0
            else:
                point[gene.name] = 0.5
                continue
            if not gene.low <= target <= gene.high:
                return None
            point[gene.name] = (target - gene.low) / (gene.high - gene.low)
        return point

    def spread(self) -> dict[str, float]:
        """Distinct genes near the midpoint, ``0.5 + 0.01 (k + 1) / (n + 1)``: a probe on
        which every gene is told apart, as valid as the midpoint for constrained methods."""
        n = len(self.evolved)
        return {gene.name: 0.5 + 0.01 * (k + 1) / (n + 1) for k, gene in enumerate(self.evolved)}

    def values(self, params: Mapping[str, Any]) -> dict[str, float]:
        """Each gene's decoded value, by gene name (every evolved gene must be in ``params``;
        the others decode their midpoint)."""
        return {
            gene.name: gene.value(float(params[gene.name]) if gene.evolves else 0.5)
            for gene in self.genes
        }

    def decode(self, params: Mapping[str, Any]) -> Candidate:
        """The candidate for a trial's genes (every evolved gene must be present)."""
        genes = {gene.name: float(params[gene.name]) for gene in self.evolved}
        values = self.values(genes)
        return Candidate(genes, self.recipe(values), self.table(values))

    def recipe(self, values: Mapping[str, float]) -> Recipe:
        """The recipe giving each gene (by name) its decoded ``value``."""
        c = self.config
        models = []
        for m, ref in enumerate(c.models):
            evolved = {g.param for g in self.genes if g.model == m}
            models.append(
                {"model": ref, "parameters": {p: self._setting(values, p, m) for p in evolved}}
            )
        global_params = {g.param for g in self.genes if g.model is None}
        parameters = dict(c.parameters)
        parameters.update({p: self._setting(values, p, None) for p in global_params})
        data: dict[str, Any] = {
            "merge_method": c.ps_method,
            "models": models,
            "parameters": parameters,
            "seed": c.seed,
        }
        if c.base_model is not None:
            data["base_model"] = c.base_model
        if c.dtype is not None:
            data["dtype"] = c.dtype
        return Recipe.model_validate(data)

    def _setting(self, values: Mapping[str, float], param: str, model: int | None) -> Any:
        """A number (global granularity) or ``{filter, value}`` items, one per group filter."""
        mine = [g for g in self.genes if g.param == param and g.model == model]
        if len(self.groups) == 1 and not self.groups[0].filters:
            return values[mine[0].name]
        return [
            {"filter": f, "value": values[gene.name]}
            for gene in sorted(mine, key=lambda g: g.group)
            for f in self.groups[gene.group].filters
        ]

    def table(self, values: Mapping[str, float]) -> GeneTable:
        """Decoded values, one row per (parameter, model), one column per group."""
        labels = model_labels(self.config.models)
        rows: dict[str, list[float]] = {}
        for gene in self.genes:
            row = gene.param if gene.model is None else f"{gene.param} {labels[gene.model]}"
            rows.setdefault(row, [0.0] * len(self.groups))[gene.group] = values[gene.name]
        return GeneTable(
            list(rows), [g.label for g in self.groups], [list(v) for v in rows.values()]
        )
