"""The seam between the search loop and what it searches: :class:`SearchSpace`.

The loop (:mod:`mergelab.evolve.search`), the storage, the workers, the backends and the
outputs only talk to a space through this protocol, so each kind of genome (the parameter
space, :mod:`mergelab.evolve.parameter_space`; the data-flow space of Akiba et al. 2024,
Sec. 3.2, :mod:`mergelab.evolve.dfs`) plugs in without touching them:

- ``distributions()`` gives the optuna distributions a trial is asked with (genes in [0, 1]
  keep optuna's CMA-ES defaults equal to the paper's settings), ``initial_points()`` the
  points evaluated first;
- ``decode(params)`` turns a trial's genes into a :class:`Candidate` (cheap, no tensors);
- ``open_live(threads)`` loads the sources once and returns a :class:`LiveModel` that builds
  any candidate into one live model, in memory;
- ``write_recipe`` / ``materialize`` export a candidate (a recipe file, a model folder);
- ``plot`` draws the chosen candidate into the plots folder, ``describe`` adds the facts a
  space knows about it to ``summary.json``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from optuna.distributions import BaseDistribution
from torch import nn
from transformers import PreTrainedTokenizerBase

from mergelab.recipe import Recipe


@dataclass(frozen=True)
class GeneTable:
    """Evolved values for a heatmap: ``values[r][c]`` is row ``rows[r]`` in group ``columns[c]``."""

    rows: list[str]
    columns: list[str]
    values: list[list[float]]


@dataclass(frozen=True)
class Candidate:
    """One decoded point of a space: the trial's genes and the recipe that builds its model.

    ``table`` holds evolved values to draw as a heatmap, for spaces that have them.
    """

    params: dict[str, float]
    recipe: Recipe
    table: GeneTable | None = None


class LiveModel(Protocol):
    """One live model that candidates are built into, in place, with no disk I/O."""

    @property
    def model(self) -> nn.Module: ...

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase: ...

    def build(self, candidate: Candidate) -> nn.Module: ...

    def close(self) -> None: ...


class SearchSpace(Protocol):
    """What a search explores (see the module docstring)."""

    def distributions(self) -> dict[str, BaseDistribution]: ...

    def initial_points(self) -> list[dict[str, float]]: ...

    def decode(self, params: Mapping[str, Any]) -> Candidate: ...

    def open_live(self, threads: int | None) -> LiveModel: ...

    def write_recipe(self, candidate: Candidate, path: Path) -> None: ...

    def materialize(self, candidate: Candidate, out: Path) -> None: ...

    def plot(self, candidate: Candidate, folder: Path, label: str) -> None: ...

    def describe(self, candidate: Candidate, live: LiveModel) -> dict[str, Any]: ...
