"""The parameter-space search space (Akiba et al., arXiv 2403.13187, Sec. 3.1).

A :class:`~mergelab.evolve.space.SearchSpace` over merge-recipe parameters: the genome of
:mod:`mergelab.evolve.genome` laid over the layer groups of :mod:`mergelab.evolve.groups`,
built in memory by :class:`~mergelab.evolve.live_merge.LiveMerge`. Genes live in [0, 1] and
the first trial is the midpoint, the paper's CMA-ES mean; with ``genome.seed_sources`` the
next ones are the sources themselves (an addition of ours: a multi-objective front then
starts from every source's trade-off).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from optuna.distributions import BaseDistribution

from mergelab.evolve.base_copies import base_copies
from mergelab.evolve.config import EvolveConfig
from mergelab.evolve.genome import Genome
from mergelab.evolve.groups import Group, layer_groups
from mergelab.evolve.live_merge import LiveMerge
from mergelab.evolve.plots import plot_genome
from mergelab.evolve.space import Candidate, LiveModel
from mergelab.merge import merge, plan_merge
from mergelab.methods import get_method
from mergelab.recipe import Recipe

log = logging.getLogger(__name__)


def probe_recipe(config: EvolveConfig) -> Recipe:
    """The recipe with every evolved parameter at its range's midpoint, for all tensors."""
    genome = Genome(config, [Group("all", ())])
    return genome.decode(genome.midpoint()).recipe


class ParameterSpace:
    """Per-group merge parameters of each source, decoded into standard recipes."""

    def __init__(self, config: EvolveConfig) -> None:
        plan = plan_merge(probe_recipe(config))
        try:
            groups = layer_groups([job.name for job in plan.jobs], config.ps_genome.group_size)
            # only the task-arithmetic family can leave a gene without effect: for any other
            # method no tensor needs reading here
            family = get_method(config.ps_method).consensus is not None
            copies = base_copies(plan, groups, config.models) if family else set()
        finally:
            plan.close()
        self.config = config
        self.genome = Genome(config, groups, copies)
        fixed = len(self.genome.genes) - len(self.genome.evolved)
        if fixed:
            log.info(
                "%d of %d genes evolve; %d stay fixed: their sources equal the base there",
                len(self.genome.evolved),
                len(self.genome.genes),
                fixed,
            )

    def distributions(self) -> dict[str, BaseDistribution]:
        return self.genome.distributions()

    def initial_points(self) -> list[dict[str, float]]:
        """The midpoint, then (``genome.seed_sources``) each source alone where expressible."""
        points = [self.genome.midpoint()]
        if self.config.ps_genome.seed_sources:
            for m in range(len(self.config.models)):
                point = self.genome.source_point(m)
                if point is not None:
                    points.append(point)
        return points

    def decode(self, params: Mapping[str, Any]) -> Candidate:
        return self.genome.decode(params)

    def open_live(self, threads: int | None) -> LiveMerge:
        return LiveMerge(self.genome, threads=threads)

    def write_recipe(self, candidate: Candidate, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(candidate.recipe.to_yaml(), encoding="utf-8")

    def materialize(self, candidate: Candidate, out: Path) -> None:
        merge(candidate.recipe, out, overwrite=True)

    def plot(self, candidate: Candidate, folder: Path, label: str) -> None:
        """``genome.png``: the evolved values per (parameter, model) and layer group."""
        if candidate.table is not None:
            plot_genome(candidate.table, folder / "genome.png", f"evolved values ({label})")

    def describe(self, candidate: Candidate, live: LiveModel) -> dict[str, Any]:
        """The genes that did not evolve (``fixed_genes``, when any): the recipe is the model,
        tensor for tensor, and their midpoint values in it change nothing."""
        fixed = [g.name for g in self.genome.genes if not g.evolves]
        return {"fixed_genes": fixed} if fixed else {}
