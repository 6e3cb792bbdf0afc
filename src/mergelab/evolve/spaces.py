"""Which :class:`~mergelab.evolve.space.SearchSpace` a config searches (its ``space`` key).

``ps`` is the parameter space, ``dfs`` the data-flow space; ``ps+dfs`` runs as two stages
(:mod:`mergelab.evolve.stages`), each with its own space.
"""

from __future__ import annotations

from mergelab.errors import ConfigError
from mergelab.evolve.config import EvolveConfig
from mergelab.evolve.dfs.space import DfsSpace
from mergelab.evolve.parameter_space import ParameterSpace
from mergelab.evolve.space import SearchSpace


def open_space(config: EvolveConfig) -> SearchSpace:
    """The search space ``config.space`` names, opened on the config's models (headers only)."""
    if config.space == "ps":
        return ParameterSpace(config)
    if config.space == "dfs":
        return DfsSpace(config)
    raise ConfigError(
        "space ps+dfs runs as two stages, each with its own space; run it with evolve()"
    )
