"""Which :class:`~mergelab.evolve.space.SearchSpace` a config searches (its ``space`` key).

Only the parameter space exists so far; a data-flow space registers here the same way.
"""

from __future__ import annotations

from mergelab.evolve.config import EvolveConfig
from mergelab.evolve.parameter_space import ParameterSpace
from mergelab.evolve.space import SearchSpace


def open_space(config: EvolveConfig) -> SearchSpace:
    """The search space ``config.space`` names, opened on the config's models (headers only)."""
    return ParameterSpace(config)
