"""Evolutionary merging: search merge recipes against evaluators (``mergelab evolve``).

Akiba et al., "Evolutionary Optimization of Model Merging Recipes" (arXiv 2403.13187), in
parameter space (per-layer-group merge parameters of each source), in data-flow space
(evolved layer paths with scaling, :mod:`mergelab.evolve.dfs`) or both in turn, searched
with optuna's CMA-ES (one objective), NSGA-II (several) or TPE; trials build their model in
memory; the study resumes after a crash and can be shared by several processes or machines.
"""

from __future__ import annotations

from mergelab.evolve.config import (
    BudgetSpec,
    EvolveConfig,
    GenomeSpec,
    ObjectiveSpec,
    load_evolve_config,
)
from mergelab.evolve.dfs.config import DfsSpec
from mergelab.evolve.run import EvolveResult, evolve
from mergelab.evolve.space import Candidate, GeneTable, LiveModel, SearchSpace

__all__ = [
    "BudgetSpec",
    "Candidate",
    "DfsSpec",
    "EvolveConfig",
    "EvolveResult",
    "GeneTable",
    "GenomeSpec",
    "LiveModel",
    "ObjectiveSpec",
    "SearchSpace",
    "evolve",
    "load_evolve_config",
]
