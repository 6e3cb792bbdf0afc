"""Deterministic top-k selection: the k largest scores, ties broken by position.

The kept set is the first k entries of the total order (score descending, flat index
ascending), so ``top_k_mask(s, a)`` is contained in ``top_k_mask(s, b)`` whenever a <= b.

Scores are non-negative (magnitudes, variances, uniform draws). For those, the bit pattern of a
float read as an integer grows with the value, so the k-th largest score is found digit by
digit (radix selection): a histogram of the top 16 bits finds the bucket holding it, a
histogram of the next 16 bits among that bucket's entries narrows it, and so on (two digits
for float32, four for float64; 16-bit scores are selected as float32). Each digit is one
pass of counting over the scores, and histograms add up across blocks, so :class:`TopK` also
selects over a tensor read block by block, never whole. Entries equal to the threshold are
kept in flat order until k are chosen; blocks must therefore be masked in order.
"""

from __future__ import annotations

import torch

_DIGIT_BITS = 16
_BUCKETS = 1 << _DIGIT_BITS
_INT_VIEW = {torch.float64: torch.int64, torch.float32: torch.int32}


class TopK:
    """Streaming selection of the ``k`` largest of ``n`` non-negative scores.

    Usage: for each ``step`` in ``range(passes)``, :meth:`observe` every block (flat scores, in
    any order), then :meth:`end_pass`; afterwards :meth:`factors` of the blocks in flat order,
    after :meth:`restart` when taking them again.
    """

    def __init__(self, n: int, k: int, dtype: torch.dtype) -> None:
        if dtype not in _INT_VIEW:
            raise TypeError(f"top-k selection needs float32 or float64 scores, not {dtype}")
        self.n, self.k = n, k
        self._dtype, self._int = dtype, _INT_VIEW[dtype]
        self._bits = torch.finfo(dtype).bits
        self.passes = self._bits // _DIGIT_BITS if 0 < k < n else 0
        self._prefix = 0  # the threshold's digits found so far, as an integer
        self._wanted = k  # entries still to choose among those sharing the prefix
        self._counts = torch.zeros(_BUCKETS, dtype=torch.int64)
        self._threshold: torch.Tensor | None = None  # 0-d, the k-th largest score
        self._tied_wanted = 0  # entries equal to the threshold that the k include
        self._tied_left = 0
        self._all_tied = False  # every entry equal to the threshold is kept

    def observe(self, step: int, scores: torch.Tensor) -> None:
        """Count the ``step``-th digit of the scores whose higher digits match the prefix."""
        bits = scores.reshape(-1).view(self._int)
        shift = self._bits - _DIGIT_BITS * (step + 1)
        if step > 0:
            bits = bits[(bits >> (shift + _DIGIT_BITS)) == self._prefix]
        digits = (bits >> shift) & (_BUCKETS - 1)
        self._counts += torch.bincount(digits.to(torch.int32), minlength=_BUCKETS)

    def end_pass(self, step: int) -> None:
        """Fix the ``step``-th digit of the threshold: the bucket holding the wanted entry."""
        at_or_above = self._counts.flip(0).cumsum(0).flip(0)  # entries in buckets >= b
        digit = int(torch.nonzero(at_or_above >= self._wanted).max())
        above = int(at_or_above[digit + 1]) if digit + 1 < _BUCKETS else 0
        self._wanted -= above
        self._prefix = (self._prefix << _DIGIT_BITS) | digit
        if step == self.passes - 1:
            value = torch.tensor(self._prefix, dtype=torch.int64).to(self._int)
            self._threshold = value.view(self._dtype)
            self._tied_wanted = self._tied_left = self._wanted
            self._all_tied = int(self._counts[digit]) == self._wanted
        self._counts.zero_()

    def restart(self) -> None:
        """Mask the blocks again from the first one."""
        self._tied_left = self._tied_wanted

    def factors(self, scores: torch.Tensor) -> torch.Tensor:
        """1.0 for the next block's kept entries, 0.0 elsewhere (blocks in flat order)."""
        if self.passes == 0:
            return torch.full_like(scores, 1.0 if self.k >= self.n else 0.0)
        if self._threshold is None:
            raise RuntimeError("TopK.factors before every pass was observed")
        threshold = self._threshold
        if self._all_tied:  # keep = [score >= threshold], in float arithmetic (no branches)
            return torch.sub(scores, threshold).sign_().add_(1.0).clamp_(max=1.0)
        keep = scores > threshold
        tied = scores == threshold
        count = int(torch.count_nonzero(tied))
        if count <= self._tied_left:
            keep |= tied
        elif self._tied_left > 0:  # keep the first tied entries only
            flat_tied = tied.reshape(-1)
            first = flat_tied & (torch.cumsum(flat_tied, 0, dtype=torch.int32) <= self._tied_left)
            keep |= first.reshape(tied.shape)
        self._tied_left = max(0, self._tied_left - count)
        return keep.to(scores.dtype)


def top_k_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask, shaped like ``scores`` (non-negative), of its ``k`` largest entries."""
    if scores.dtype in (torch.bfloat16, torch.float16):
        scores = scores.float()  # exact, order-preserving
    select = TopK(scores.numel(), k, scores.dtype)
    for step in range(select.passes):
        select.observe(step, scores)
        select.end_pass(step)
    return select.factors(scores).bool()
