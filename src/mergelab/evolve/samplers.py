"""The optuna sampler a search uses; mergelab never hand-writes CMA-ES or NSGA-II.

- ``cmaes`` (default for one objective): :class:`optuna.samplers.CmaEsSampler`. With genes
  in [0, 1] its defaults are the paper's settings (Akiba et al., arXiv 2403.13187, Sec. 4.1):
  mean at the midpoint, ``sigma0 = range / 6``, population ``4 + floor(3 ln n)`` unless
  ``population`` is set. Needs the small ``cmaes`` package.
- ``nsga2`` (default for several objectives): :class:`optuna.samplers.NSGAIISampler`
  (Deb et al. 2002), population ``population`` or optuna's default of 50.
- ``tpe``: :class:`optuna.samplers.TPESampler` (one or several objectives).
"""

from __future__ import annotations

import importlib.util

import optuna

from mergelab.errors import ConfigError
from mergelab.evolve.config import EvolveConfig


def make_sampler(config: EvolveConfig, *, seed: int) -> optuna.samplers.BaseSampler:
    """The configured sampler, seeded with ``seed``."""
    name = config.sampler_name
    if name == "cmaes":
        if importlib.util.find_spec("cmaes") is None:
            raise ConfigError(
                "sampler cmaes needs the 'cmaes' package; install it with `pip install cmaes` "
                "or choose sampler: tpe"
            )
        return optuna.samplers.CmaEsSampler(
            popsize=config.population,
            seed=seed,
            warn_independent_sampling=False,
        )
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=config.population or 50, seed=seed)
    return optuna.samplers.TPESampler(seed=seed)
