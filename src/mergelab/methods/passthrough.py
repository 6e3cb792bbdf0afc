"""Passthrough: copy the single input tensor, optionally scaled (layer stacking).

Used with ``slices`` to stack layer ranges of several models into one (a "frankenmerge",
mergekit's ``passthrough``). Exactly one input per tensor; result ``scale * x``.
"""

from __future__ import annotations

import torch

from mergelab.methods._registry import Param, merge_method


@merge_method(
    "passthrough",
    base="none",
    elementwise=True,
    params=(
        Param("scale", default=1.0, per_model=True, doc="factor applied to the copied tensor"),
    ),
    summary="copy one model's tensor (times scale); stacks layers with slices",
    min_models=1,
    max_models=1,
)
def passthrough(base: None, tensors: list[torch.Tensor], *, scale: list[float]) -> torch.Tensor:
    return tensors[0] if scale[0] == 1.0 else tensors[0] * scale[0]
