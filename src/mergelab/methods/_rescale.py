"""Rescaling of a sparsified task vector: the ``rescale`` parameter of the task-arithmetic family.

Two modes (``rescale`` accepts a bool or a mode name):

- ``true`` / ``"l1"`` (mergekit 0.1.5's behaviour, the default wherever rescaling is on):
  ``kept * (|d|_1 / |kept|_1)``, left as is when either norm is below 1e-7.
- ``"inverse_density"`` (DARE, Yu et al. 2024, https://arxiv.org/abs/2311.03099, and MergeLM,
  PEFT): ``kept / p`` with ``p`` the keep probability: the density, or DELLA's per-entry ``p``.
"""

from __future__ import annotations

from typing import Literal

import torch

from mergelab.errors import ConfigError

RescaleMode = Literal["none", "l1", "inverse_density"]

RESCALE_CHOICES: tuple[bool | str, ...] = (False, True, "l1", "inverse_density")

RESCALE_DOC = (
    "rescale the kept entries: true or 'l1' scales them back to the task vector's L1 norm "
    "(mergekit); 'inverse_density' divides them by the keep probability (DARE paper); "
    "false keeps them as they are"
)

_NORM_EPS = 1e-7


def rescale_mode(rescale: bool | str) -> RescaleMode:
    """The mode named by a recipe's ``rescale`` value."""
    if isinstance(rescale, bool):
        return "l1" if rescale else "none"
    if rescale in ("l1", "inverse_density"):
        return "l1" if rescale == "l1" else "inverse_density"
    raise ConfigError(
        f"rescale={rescale!r} is not a rescale mode; use true, false, 'l1' or 'inverse_density'"
    )


def rescale_kept(
    delta: torch.Tensor,
    kept: torch.Tensor,
    mode: RescaleMode,
    keep_prob: float | torch.Tensor,
) -> torch.Tensor:
    """Rescale ``kept`` (``delta`` with its dropped entries zeroed), same shape as ``delta``.

    ``keep_prob`` is the probability each entry was kept with: a float, or a tensor that
    broadcasts against ``kept`` (DELLA's per-entry probabilities). ``kept`` must be a fresh
    tensor: it is scaled in place.
    """
    if mode == "l1":
        before = torch.linalg.vector_norm(delta, ord=1)  # |d|_1, 0-d
        after = torch.linalg.vector_norm(kept, ord=1)  # |kept|_1, 0-d
        usable = (before >= _NORM_EPS) & (after >= _NORM_EPS)
        factor = torch.where(usable, before / after.clamp_min(_NORM_EPS), 1.0)
        return kept.mul_(factor)
    if mode == "inverse_density":
        if isinstance(keep_prob, float) and keep_prob <= 0.0:
            return kept  # density 0 defines no scale: the kept entries stay as they are
        return kept.div_(keep_prob)
    return kept
