"""NearSwap: take the other model's value where it is close to the base's.

Source: https://huggingface.co/alchemonaut/QuartetAnemoi-70B-t0.0001 (mergekit's
``nearswap``). Elementwise ``w = clamp(t / max(|b - x|, 1e-6), 0, 1)``; result
``w x + (1 - w) b``: entries that differ by at most ``t`` are swapped, larger differences
move the base towards ``x`` by ``t``.
"""

from __future__ import annotations

import torch

from mergelab.methods._registry import Param, merge_method


@merge_method(
    "nearswap",
    base="required",
    elementwise=True,
    params=(Param("t", doc="similarity threshold: differences up to t are swapped", low=0.0),),
    summary="swap in the other model's values where they are within t of the base's",
    paper="https://huggingface.co/alchemonaut/QuartetAnemoi-70B-t0.0001",
    min_models=1,
    max_models=1,
)
def nearswap(base: torch.Tensor, tensors: list[torch.Tensor], *, t: float) -> torch.Tensor:
    other = tensors[0]
    w = (t / (base - other).abs().clamp_min(1e-6)).clamp(0.0, 1.0)  # elementwise, shape of b
    return w * other + (1.0 - w) * base
