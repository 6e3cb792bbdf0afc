"""Rescaling of a sparsified task vector: the ``rescale`` parameter of the task-arithmetic family.

Two modes (``rescale`` accepts a bool or a mode name):

- ``true`` / ``"l1"`` (mergekit 0.1.5's behaviour, the default wherever rescaling is on):
  ``kept * (|d|_1 / |kept|_1)``, left as is when either norm is below 1e-7.
- ``"inverse_density"`` (DARE, Yu et al. 2024, https://arxiv.org/abs/2311.03099, and MergeLM,
  PEFT): ``kept / p`` with ``p`` the keep probability: the density, or DELLA's per-entry ``p``.
"""

from __future__ import annotations

from typing import Literal

from mergelab.errors import ConfigError

RescaleMode = Literal["none", "l1", "inverse_density"]

RESCALE_CHOICES: tuple[bool | str, ...] = (False, True, "l1", "inverse_density")

RESCALE_DOC = (
    "rescale the kept entries: true or 'l1' scales them back to the task vector's L1 norm "
    "(mergekit); 'inverse_density' divides them by the keep probability (DARE paper); "
    "false keeps them as they are"
)

NORM_EPS = 1e-7  # the L1 rescale leaves a tensor as it is below this norm


def rescale_mode(rescale: bool | str) -> RescaleMode:
    """The mode named by a recipe's ``rescale`` value."""
    if isinstance(rescale, bool):
        return "l1" if rescale else "none"
    if rescale in ("l1", "inverse_density"):
        return "l1" if rescale == "l1" else "inverse_density"
    raise ConfigError(
        f"rescale={rescale!r} is not a rescale mode; use true, false, 'l1' or 'inverse_density'"
    )
