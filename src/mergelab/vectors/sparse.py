"""Sparsified task vectors: which entries are kept, and their compact encodings.

Two selections keep exactly ``k = max(1, int(density * n))`` of a tensor's ``n`` entries:

- ``magnitude`` (the trim step of TIES-Merging, Yadav et al. 2023,
  https://arxiv.org/abs/2306.01708): the k largest ``|delta|`` (ties: lower flat index),
  values unchanged;
- ``dare`` (drop and rescale, Yu et al. 2024, https://arxiv.org/abs/2311.03099): k entries
  drawn uniformly without replacement, values multiplied by ``n / k``.

Deviation from DARE: the paper keeps each entry independently with probability ``p``, so the
kept count is random. Here exactly ``k`` entries are kept (each still with probability
``k / n``, and the ``n / k`` rescale keeps ``E[kept delta] = delta``), so every stored size is
known before any tensor is read and the artifact streams to disk.

Encodings (see :mod:`mergelab.vectors.format`): ``coo`` (flat indices + values) and
``bitmask`` (one bit per entry + values), both with the kept values in flat order.
"""

from __future__ import annotations

import torch

from mergelab.methods._select import top_k_mask
from mergelab.vectors.format import SparsifyMode

_BITS = 2 ** torch.arange(8, dtype=torch.int64)  # bit i of a byte has weight 2^i


def kept_count(numel: int, density: float) -> int:
    """``k = max(1, int(density * n))`` (0 for an empty tensor)."""
    return min(numel, max(1, int(density * numel)))


def select(
    delta: torch.Tensor,
    density: float,
    mode: SparsifyMode,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(flat indices ascending (k,) int64, kept values (k,)) of ``delta`` at ``density``."""
    flat = delta.reshape(-1)  # (n,)
    n = flat.numel()
    k = kept_count(n, density)
    if mode == "magnitude":
        mask = top_k_mask(flat.abs(), k)
        scale = 1.0
    else:
        u = torch.rand(n, generator=generator, dtype=torch.float64, device=flat.device)
        mask = top_k_mask(u, k)  # k entries, uniformly without replacement
        scale = n / k
    indices = mask.nonzero().reshape(-1)  # (k,), ascending
    return indices, flat[indices] * scale


def scatter(indices: torch.Tensor, values: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """The dense tensor of ``shape`` holding ``values`` at flat ``indices``, zeros elsewhere."""
    n = 1
    for s in shape:
        n *= s
    dense = torch.zeros(n, dtype=values.dtype, device=values.device)
    dense[indices.long()] = values
    return dense.reshape(shape)


def pack_bits(indices: torch.Tensor, numel: int) -> torch.Tensor:
    """The (ceil(n/8),) uint8 mask with bit ``i % 8`` of byte ``i // 8`` set for each index."""
    bits = torch.zeros(-(-numel // 8) * 8, dtype=torch.int64, device=indices.device)
    bits[indices.long()] = 1
    return (bits.reshape(-1, 8) * _BITS.to(indices.device)).sum(dim=1).to(torch.uint8)


def unpack_bits(mask: torch.Tensor, numel: int) -> torch.Tensor:
    """Flat indices (ascending, int64) of the set bits among the first ``numel``."""
    bits = (mask.to(torch.int64).unsqueeze(1) // _BITS.to(mask.device)) % 2  # (bytes, 8)
    return bits.reshape(-1)[:numel].nonzero().reshape(-1)
