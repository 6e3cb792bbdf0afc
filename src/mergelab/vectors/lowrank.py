"""Low-rank task vectors: the best rank-r approximation of each matrix delta by truncated SVD.

``delta = U S Vh`` (U (out, m), S (m,), Vh (m, in), m = min(out, in)); keeping the r largest
singular values gives the closest rank-r matrix in Frobenius and spectral norm
(Eckart-Young). The factors are split symmetrically, as LoRA stores them (Hu et al. 2021,
https://arxiv.org/abs/2106.09685)::

    A = sqrt(S_r) Vh_r        (r, in)      -- PEFT lora_A
    B = U_r sqrt(S_r)         (out, r)     -- PEFT lora_B,   delta_r = B @ A

The SVD is the exact one (``torch.linalg.svd``), not a randomized sketch: no random numbers,
and the error is the optimal one (``sum_{i>r} S_i^2``, squared Frobenius).
"""

from __future__ import annotations

import torch


def factors(delta: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(A (r, in), B (out, r)) with ``B @ A`` the best rank-``rank`` approximation of ``delta``."""
    U, S, Vh = torch.linalg.svd(delta, full_matrices=False)
    root = S[:rank].sqrt()  # (r,)
    a = root.unsqueeze(1) * Vh[:rank]  # (r, in)
    b = U[:, :rank] * root.unsqueeze(0)  # (out, r)
    return a.contiguous(), b.contiguous()


def pack(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """One (r, in + out) tensor ``[A | B^T]`` (an engine job yields a single tensor)."""
    return torch.cat([a, b.T], dim=1)


def unpack(packed: torch.Tensor, inp: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of :func:`pack`: (A (r, in), B (out, r))."""
    return packed[:, :inp].contiguous(), packed[:, inp:].T.contiguous()
