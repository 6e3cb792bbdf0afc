"""Deterministic top-k selection: the mask of the k largest scores, ties broken by position.

A full sort costs O(n log n) and leaves the order of equal scores unspecified. Here one
selection (``torch.kthvalue``) finds the k-th largest score; every larger score is kept, and
among the scores equal to it the lowest flat indices are kept until k entries are chosen.
The mask is therefore the first k entries of the total order (score descending, flat index
ascending), so ``top_k_mask(s, a)`` is contained in ``top_k_mask(s, b)`` whenever a <= b.
"""

from __future__ import annotations

import torch


def top_k_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask, shaped like ``scores``, of its ``k`` largest entries (ties: lower index)."""
    n = scores.numel()
    if k >= n:
        return torch.ones_like(scores, dtype=torch.bool)
    if k <= 0:
        return torch.zeros_like(scores, dtype=torch.bool)
    flat = scores.reshape(-1)  # (n,)
    threshold = torch.kthvalue(flat, n - k + 1).values  # the k-th largest score
    keep = flat >= threshold
    excess = int(keep.sum()) - k  # entries tied at the threshold beyond the k wanted
    if excess > 0:  # keep the tied entries of lowest index only
        tied = flat == threshold
        keep &= ~tied | (torch.cumsum(tied, dim=0) <= int(tied.sum()) - excess)
    return keep.reshape(scores.shape)
