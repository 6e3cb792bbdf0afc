"""An independent numpy reading of the random keep masks of ``mergelab.methods._draws``.

Entry ``i`` is kept when the 32-bit number ``hi_i 2^16 + lo_i`` is below ``floor(p_i 2^32)``:
``hi_i`` are the 16-bit lanes of the generator's full-range 64-bit draws (lowest lane first,
each read as its signed value + 2^15), and only the entries whose ``hi_i`` equals the
threshold's high half draw a ``lo_i``, the same way, after the block's ``hi`` draws.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def _lanes(n: int, gen: torch.Generator) -> np.ndarray:
    words = torch.empty((n + 3) // 4, dtype=torch.int64)
    words.random_(-(2**63), None, generator=gen)
    bits = words.numpy().view(np.uint64)
    lanes = np.stack([(bits >> np.uint64(16 * k)) & np.uint64(0xFFFF) for k in range(4)], axis=1)
    unsigned = lanes.ravel()[:n].astype(np.int64)
    signed = np.where(unsigned >= 2**15, unsigned - 2**16, unsigned)
    return signed + 2**15


def reference_keep_mask(gen: torch.Generator, shape: tuple[int, ...], p: object) -> np.ndarray:
    """The mask ``keep_mask(shape, p, gen)`` draws, computed from the definition."""
    n = math.prod(shape)
    threshold = np.clip(
        np.floor(np.broadcast_to(np.asarray(p, np.float64), shape) * 2.0**32), 0, 2**32
    )
    threshold = threshold.astype(np.int64).ravel()
    if np.all(threshold >= 2**32):
        return np.ones(shape, bool)
    hi_bound, lo_bound = threshold // 2**16, threshold % 2**16
    hi = _lanes(n, gen)
    kept = hi < hi_bound
    ties = np.flatnonzero((hi == hi_bound) & (lo_bound > 0))
    if ties.size:
        kept[ties] = _lanes(ties.size, gen) < lo_bound[ties]
    return kept.reshape(shape)
