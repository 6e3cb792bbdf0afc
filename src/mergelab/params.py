"""Resolving a recipe parameter for one tensor: gradients, filters and precedence.

A setting is a scalar; a gradient list, interpolated linearly at ``t`` (a list of booleans or
strings picks by index instead); or ``{filter, value}`` items, first match wins (``filter`` a
substring of the tensor name; none or ``*`` matches all). Precedence: per-model, per-slice,
global, then the method's default (``spec/methods.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mergelab.recipe import FilteredValue, ParamSetting, Scalar


def evaluate_setting(setting: ParamSetting, tensor_name: str, t: float) -> Scalar | None:
    """The value of ``setting`` for ``tensor_name`` at gradient position ``t`` in [0, 1]."""
    if isinstance(setting, FilteredValue):
        setting = [setting]
    if isinstance(setting, (bool, int, float, str)):
        return setting
    if not setting:
        return None
    if isinstance(setting[0], FilteredValue):
        for item in setting:
            assert isinstance(item, FilteredValue)
            if item.filter in (None, "*") or item.filter in tensor_name:
                return evaluate_setting(item.value, tensor_name, t)
        return None
    values: list[Any] = list(setting)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        # gradient: position t * (k - 1) between the two neighbouring anchors
        scaled = t * (len(values) - 1)
        lo = min(int(scaled), len(values) - 1)
        hi = min(lo + 1, len(values) - 1)
        frac = scaled - lo
        return float((1 - frac) * values[lo] + frac * values[hi])
    return values[int(t * (len(values) - 1))]


def resolve(
    name: str, tensor_name: str, t: float, scopes: Sequence[dict[str, ParamSetting]]
) -> Scalar | None:
    """The first value any scope (highest precedence first) gives parameter ``name``."""
    for scope in scopes:
        if name in scope:
            value = evaluate_setting(scope[name], tensor_name, t)
            if value is not None:
                return value
    return None


def gradient_position(index_in_slice: int, slice_length: int) -> float:
    """``t`` of a layer inside a slice: ``i / (n - 1)``, 1 for a one-layer slice."""
    return 1.0 if slice_length <= 1 else index_in_slice / (slice_length - 1)
