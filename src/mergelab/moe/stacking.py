"""Combine functions that turn the experts' dense MLP weights into Mixtral expert tensors.

Dense SwiGLU MLP of expert e (Shazeer 2020, "GLU Variants Improve Transformer"):
``mlp_e(x) = down_e (silu(gate_e x) * (up_e x))`` with gate_e, up_e [I, H] and down_e [H, I].
``residual_scale`` s_e multiplies down_e, so expert e's output is scaled by s_e.

The engine calls each function on the job's input tensors in the job's order (float32).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mergelab.plan import Combine


def stack_gate_up() -> Combine:
    """[gate_0, up_0, gate_1, up_1, ...] (each [I, H]) -> gate_up_proj [E, 2I, H]."""

    def combine(tensors: list[torch.Tensor]) -> torch.Tensor:
        pairs = zip(tensors[0::2], tensors[1::2], strict=True)
        return torch.stack([torch.cat((gate, up)) for gate, up in pairs])

    return combine


def stack_down(scales: Sequence[float]) -> Combine:
    """[down_0, down_1, ...] (each [H, I]) -> down_proj [E, H, I], expert e times s_e."""
    factors = list(scales)

    def combine(tensors: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack([s * down for s, down in zip(factors, tensors, strict=True)])

    return combine


def scaled(scale: float) -> Combine:
    """One tensor times ``scale`` (a per-expert down projection, or a plain copy at 1.0)."""

    def combine(tensors: list[torch.Tensor]) -> torch.Tensor:
        return tensors[0] if scale == 1.0 else scale * tensors[0]

    return combine


def constant(tensor: torch.Tensor) -> Combine:
    """A job with no inputs that yields a precomputed tensor (a router matrix)."""

    def combine(tensors: list[torch.Tensor]) -> torch.Tensor:
        return tensor

    return combine
