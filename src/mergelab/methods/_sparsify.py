"""Sparsifiers of the task-arithmetic family: which entries of a task vector ``d`` survive.

- magnitude (TIES, Yadav et al. 2023, https://arxiv.org/abs/2306.01708): keep the
  ``max(1, int(density * n))`` entries of largest ``|d|``.
- outliers (Model Breadcrumbs, Davari & Belilovsky 2024, https://arxiv.org/abs/2312.06795):
  rank by ``|d|``, drop the top ``int(gamma * n)``, keep the next ``int(density * n)``.
- random (DARE, Yu et al. 2024, https://arxiv.org/abs/2311.03099): keep each entry with
  probability ``density``.
- della (DELLA-Merging, Deep et al. 2024, https://arxiv.org/abs/2406.11617): per row, keep
  probability ``p = (density - epsilon) + 2 epsilon rank / (row_len - 1)``, rank 0 for the
  smallest magnitude.

A density >= 1 returns ``d`` unchanged (no rescaling, no random draws), as mergekit does;
DELLA with density <= 0 returns zeros (also mergekit's), before checking epsilon.
Random draws are ``u ~ U[0, 1)`` from ``torch.rand`` with the model's generator, one per entry
in flat (row-major) order; an entry is kept when ``u < p``.

Deviations from mergekit 0.1.5: equal magnitudes are ordered by position instead of by an
unstable sort (so the kept set is reproducible); the random draws are ``torch.rand`` from
the injected generator instead of ``torch.bernoulli`` on the global RNG; DELLA ranks along
the last dimension (mergekit: dim 1, the same for 1-D and 2-D tensors) and gives a
one-entry row ``p = density`` (mergekit: NaN).
"""

from __future__ import annotations

from typing import Any

import torch

from mergelab.errors import ConfigError
from mergelab.methods._rescale import RescaleMode, rescale_kept
from mergelab.methods._select import top_k_mask


def magnitude(delta: torch.Tensor, density: float, rescale: RescaleMode) -> torch.Tensor:
    """Keep the ``max(1, int(density * n))`` largest-magnitude entries of ``delta``."""
    if density >= 1.0:
        return delta
    k = max(1, int(density * delta.numel()))
    kept = torch.where(top_k_mask(delta.abs(), k), delta, 0.0)
    return rescale_kept(delta, kept, rescale, density)


def outliers(
    delta: torch.Tensor, density: float, gamma: float, rescale: RescaleMode
) -> torch.Tensor:
    """Drop the top ``int(gamma * n)`` magnitudes, keep the next ``int(density * n)``."""
    if density >= 1.0:
        return delta
    n = delta.numel()
    n_keep = int(density * n)
    n_drop = min(int(gamma * n), n - n_keep)  # density + gamma > 1: drop fewer outliers
    scores = delta.abs()
    band = top_k_mask(scores, n_drop + n_keep) & ~top_k_mask(scores, n_drop)
    kept = torch.where(band, delta, 0.0)
    return rescale_kept(delta, kept, rescale, density)


def random(
    delta: torch.Tensor, density: float, rescale: RescaleMode, generator: torch.Generator
) -> torch.Tensor:
    """Keep each entry independently with probability ``density`` (DARE's drop-and-rescale)."""
    if density >= 1.0:
        return delta
    u = torch.rand(delta.shape, generator=generator, dtype=delta.dtype, device=delta.device)
    kept = torch.where(u < density, delta, 0.0)
    return rescale_kept(delta, kept, rescale, density)


def della_problems(params: dict[str, Any]) -> list[str]:
    """The planner's check of DELLA's ``0 < density - epsilon`` and ``density + epsilon < 1``."""
    problems = []
    for density, epsilon in zip(params["density"], params["epsilon"], strict=True):
        if 0.0 < density < 1.0 and not (density - epsilon > 0.0 and density + epsilon < 1.0):
            problems.append(
                f"della needs 0 < density - epsilon and density + epsilon < 1, got "
                f"density={density} and epsilon={epsilon}; lower epsilon or move density "
                "towards 0.5"
            )
    return problems


def della(
    delta: torch.Tensor,
    density: float,
    epsilon: float,
    rescale: RescaleMode,
    generator: torch.Generator,
) -> torch.Tensor:
    """Keep each entry with a probability that grows with its magnitude rank in its row."""
    if density >= 1.0:
        return delta
    if density <= 0.0:
        return torch.zeros_like(delta)
    if not (density - epsilon > 0.0 and density + epsilon < 1.0):
        raise ConfigError(
            f"della needs 0 < density - epsilon and density + epsilon < 1, got density={density}"
            f" and epsilon={epsilon}; lower epsilon or move density towards 0.5"
        )
    # rows: (r, L); a 0-d or 1-D tensor is one row
    rows = delta.reshape(1, -1) if delta.dim() < 2 else delta.reshape(-1, delta.shape[-1])
    length = rows.shape[-1]
    order = torch.sort(rows.abs(), dim=-1, stable=True).indices  # ascending magnitude
    positions = torch.arange(length, device=delta.device).expand_as(order)
    rank = torch.empty_like(order).scatter_(-1, order, positions)  # 0 = smallest |d|
    # frac = rank / (L - 1) in [0, 1]; a one-entry row sits in the middle
    frac = rank.to(delta.dtype) / (length - 1) if length > 1 else torch.full_like(rows, 0.5)
    p = (density - epsilon) + 2.0 * epsilon * frac  # (r, L), in (0, 1)
    u = torch.rand(rows.shape, generator=generator, dtype=delta.dtype, device=delta.device)
    kept = torch.where(u < p, rows, 0.0)
    return rescale_kept(rows, kept, rescale, p).reshape(delta.shape)
