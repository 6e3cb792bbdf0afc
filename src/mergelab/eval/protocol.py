"""The Evaluator seam: anything that scores a live model and returns named float metrics.

Evaluators are the fitness functions of evolutionary merging, called thousands of times on
an in-memory model, so an evaluator does its set-up (task loading, tokenization, batching)
once, at construction, and ``__call__`` only runs the model.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import nn


@runtime_checkable
class Evaluator(Protocol):
    """Scores a causal LM with the HF forward signature.

    The model is called as ``model(input_ids=..., attention_mask=..., position_ids=...,
    past_key_values=..., use_cache=...)`` and must return an object with ``.logits``
    (B, L, V) and, when ``use_cache`` is true, ``.past_key_values`` to feed back.
    """

    def __call__(self, model: nn.Module) -> dict[str, float]: ...
