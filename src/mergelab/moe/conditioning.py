"""How well a layer's router separates its experts: condition number and the closest pair.

For a router matrix R [E, H] (E <= H) the 2-norm condition number is
cond(R) = sigma_max(R) / sigma_min(R). Orthonormal rows give 1; rows that are nearly
parallel (experts whose prompts give similar hidden states) drive sigma_min to 0 and cond to
infinity, and such experts are hard to tell apart. mergekit-moe warns above 5; so does
mergelab, and it also names the pair of experts whose rows are most alike (cosine).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch

COND_LIMIT = 5.0


def condition_number(router: torch.Tensor) -> float:
    """sigma_max / sigma_min of ``router`` [E, H]; inf when its rows are dependent, i.e.
    sigma_min <= sigma_max * max(E, H) * eps(dtype) (numpy's matrix-rank tolerance)."""
    s = torch.linalg.svdvals(router.double())
    eps = torch.finfo(router.dtype).eps if router.dtype.is_floating_point else 0.0
    if float(s[-1]) <= float(s[0]) * max(router.shape) * eps:
        return math.inf
    return float(s[0] / s[-1])


def closest_pair(router: torch.Tensor) -> tuple[int, int, float]:
    """(i, j, cosine) of the two experts whose router rows are most alike."""
    rows = router.double()
    unit = rows / rows.norm(dim=1, keepdim=True).clamp(min=1e-12)
    cos = unit @ unit.T  # [E, E]
    i, j = max(itertools.combinations(range(rows.shape[0]), 2), key=lambda p: float(cos[p]))
    return i, j, float(cos[i, j])


def conditioning_warnings(routers: Sequence[torch.Tensor], names: Sequence[str]) -> list[str]:
    """One warning per group of layers whose router is ill-conditioned (cond > 5)."""
    if len(names) < 2:
        return []
    bad: dict[tuple[int, int], list[tuple[int, float, float]]] = {}
    for layer, router in enumerate(routers):
        cond = condition_number(router)
        if cond > COND_LIMIT:
            i, j, cos = closest_pair(router)
            bad.setdefault((i, j), []).append((layer, cond, cos))
    warnings = []
    for (i, j), hits in bad.items():
        layers = ", ".join(str(layer) for layer, _, _ in hits)
        worst = max(cond for _, cond, _ in hits)
        cos = max(c for _, _, c in hits)
        warnings.append(
            f"router of layer(s) {layers} is ill-conditioned (cond up to {worst:.3g} > "
            f"{COND_LIMIT:g}): experts {i} ({names[i]}) and {j} ({names[j]}) look alike "
            f"(cosine {cos:.3f}); their prompts are too similar: give each expert prompts "
            "only its skill sees, or add negative_prompts"
        )
    return warnings
