"""The data-flow search space (Akiba et al., arXiv 2403.13187, Sec. 3.2) behind the protocol.

A :class:`~mergelab.evolve.space.SearchSpace` whose genome is :mod:`.genome`'s slots and
scales, whose trials run the path in memory (:mod:`.path_model`) and whose candidates are
exported as passthrough recipes with the scales folded into the weights (:mod:`.export`):
``mergelab merge`` of the written recipe is a standard checkpoint of A's architecture. The
first trial is the midpoint, which is A's own path. For the chosen candidate, the summary
records the path and the largest logit difference between the in-memory path and its
export.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from optuna.distributions import BaseDistribution

from mergelab.evolve.config import EvolveConfig
from mergelab.evolve.dfs.checks import open_dfs_model
from mergelab.evolve.dfs.export import export_model, export_recipe, max_logit_difference
from mergelab.evolve.dfs.genome import DfsGenome
from mergelab.evolve.dfs.path_model import PathModel
from mergelab.evolve.dfs.plot import plot_path
from mergelab.evolve.genome import model_labels
from mergelab.evolve.space import Candidate, LiveModel
from mergelab.merge import merge


class DfsSpace:
    """Layer paths through ``config.dfs.models`` (A first), with scales."""

    def __init__(self, config: EvolveConfig) -> None:
        spec = config.dfs_spec
        self.models = [open_dfs_model(ref) for ref in spec.models]
        self.config = config
        self.refs = [m.ref for m in self.models]
        depths = [m.depth for m in self.models]
        self.genome = DfsGenome(spec, model_labels(self.refs), depths)

    def distributions(self) -> dict[str, BaseDistribution]:
        return self.genome.distributions()

    def initial_points(self) -> list[dict[str, float]]:
        """The midpoint: A's own path with unit scales (for a range centred on 1)."""
        return [self.genome.midpoint()]

    def decode(self, params: Mapping[str, Any]) -> Candidate:
        """The trial's genes and the export recipe of its path; raises for an empty path."""
        genes = {name: float(params[name]) for name in self.genome.names()}
        path = self.genome.decode(genes)
        recipe = export_recipe(path, self.refs, self.models[0].depth, dtype=self.config.dtype)
        return Candidate(genes, recipe)

    def open_live(self, threads: int | None) -> PathModel:
        """The loaded models; ``threads`` is unused (a path runs no merge engine)."""
        return PathModel(self.genome, self.models, self.config.dtype)

    def write_recipe(self, candidate: Candidate, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(candidate.recipe.to_yaml(), encoding="utf-8")

    def materialize(self, candidate: Candidate, out: Path) -> None:
        merge(candidate.recipe, out, overwrite=True)

    def plot(self, candidate: Candidate, folder: Path, label: str) -> None:
        """``path.png``: the slots that are on, with their scales, and the path they make."""
        path = self.genome.decode(candidate.params)
        plot_path(self.genome, path, folder / "path.png", f"evolved path ({label})")

    def describe(self, candidate: Candidate, live: LiveModel) -> dict[str, Any]:
        """The path, the repaired slots, and the export's max logit difference to the path."""
        path = self.genome.decode(candidate.params)
        exported = export_model(candidate.recipe)
        in_memory = live.build(candidate)
        vocab = len(live.tokenizer)
        return {
            "path": self.genome.describe(path),
            "repaired_slots": path.repaired,
            "export_max_logit_diff": max_logit_difference(in_memory, exported, vocab),
        }
