"""Bernoulli keep masks from a generator, exact to 2^-32, at 16 random bits per entry.

A mask keeps entry ``i`` when a uniform 32-bit number ``u_i`` is below its threshold
``T_i = floor(p_i 2^32)``: ``P(keep) = T_i / 2^32``. Drawing 32 bits per entry costs as much
as the rest of a DARE merge, so ``u_i`` is drawn in two halves and the low half only where
it can matter:

1. ``hi_i``: 16-bit lanes of ``ceil(n / 4)`` full-range 64-bit draws of the generator
   (lowest lane first, the last word's unused lanes dropped), read as ``lane + 2^15`` in
   ``[0, 2^16)``. Entry ``i`` is kept when ``hi_i < T_i >> 16``, dropped when above it.
2. The entries with ``hi_i == T_i >> 16`` (about one in 65536) draw their low halves the same
   way, in flat order, after the block's ``hi`` draws: kept when ``lo_i < T_i & 0xFFFF``.

Together that is ``u_i = hi_i 2^16 + lo_i`` compared with ``T_i``, with the same
probability as one 32-bit draw per entry and about half the cost of ``torch.rand``.
"""

from __future__ import annotations

import torch

_LANE = 2**16
_OFFSET = 2**15  # int16 lane + 2^15 = the unsigned 16-bit value


def keep_mask(
    shape: torch.Size | tuple[int, ...],
    keep_prob: float | torch.Tensor,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """A boolean mask of ``shape``: entry ``i`` kept with probability ``floor(p_i 2^32) / 2^32``,
    ``p`` a number or a tensor of ``shape``, drawn from ``generator`` as the module says."""
    n = 1
    for s in shape:
        n *= s
    threshold = _threshold(keep_prob, device)
    if not isinstance(threshold, torch.Tensor) and threshold >= 2**32:
        return torch.ones(shape, dtype=torch.bool, device=device)  # p >= 1 draws nothing
    hi_bound = threshold // _LANE  # ints: a number or an int64 tensor
    lo_bound = threshold % _LANE
    hi = _lanes(n, generator, device).view(shape)
    if isinstance(hi_bound, torch.Tensor):
        kept = hi < (hi_bound - _OFFSET)
        ties = hi == (hi_bound - _OFFSET)
        ties &= lo_bound > 0
    else:
        kept = hi < hi_bound - _OFFSET
        if lo_bound == 0:
            return kept
        ties = hi == hi_bound - _OFFSET
    tied = ties.nonzero(as_tuple=True)
    count = tied[0].numel()
    if count:
        lo = _lanes(count, generator, device).to(torch.int64) + _OFFSET
        bound = lo_bound[tied] if isinstance(lo_bound, torch.Tensor) else lo_bound
        kept[tied] = lo < bound
    return kept


def _threshold(keep_prob: float | torch.Tensor, device: torch.device | str) -> int | torch.Tensor:
    """``floor(p 2^32)`` clamped to ``[0, 2^32]``, exact for a number (float64 for a tensor)."""
    if isinstance(keep_prob, torch.Tensor):
        scaled = keep_prob.to(device=device, dtype=torch.float64).mul(2.0**32).floor_()
        return scaled.clamp_(0, 2**32).to(torch.int64)
    return min(max(int(keep_prob * 2**32), 0), 2**32)


def _lanes(n: int, generator: torch.Generator, device: torch.device | str) -> torch.Tensor:
    """``n`` signed 16-bit lanes of ``ceil(n / 4)`` full-range 64-bit draws, lowest first."""
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=device)
    words.random_(-(2**63), None, generator=generator)
    return words.view(torch.int16)[:n]
