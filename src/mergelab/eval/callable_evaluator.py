"""Any Python function of the model as an evaluator (an arbitrary fitness function).

Non-finite values are passed through unchanged: deciding what a NaN fitness means belongs
to the search loop, not to the evaluator.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

from mergelab.errors import EvaluationError

Score = float | int | torch.Tensor


class CallableEvaluator:
    """Wraps ``fn(model) -> dict[str, float] | float``; a bare number becomes ``{"score": x}``."""

    def __init__(self, fn: Callable[[nn.Module], Mapping[str, Score] | Score]) -> None:
        if not callable(fn):
            raise EvaluationError(f"{fn!r} is not callable; pass a function of the model")
        self.fn = fn

    def __call__(self, model: nn.Module) -> dict[str, float]:
        result = self.fn(model)
        name = getattr(self.fn, "__name__", repr(self.fn))
        if isinstance(result, Mapping):
            return {str(key): _number(name, str(key), value) for key, value in result.items()}
        return {"score": _number(name, "score", result)}


def _number(name: str, key: str, value: object) -> float:
    """``value`` (a number or a one-element tensor) as a float."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.item())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise EvaluationError(
        f"evaluator {name} returned {value!r} for metric '{key}'; "
        "return a float or a dict of floats"
    )
