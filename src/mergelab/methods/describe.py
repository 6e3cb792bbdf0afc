"""A plain description of every registered merge method, for ``mergelab methods`` and docs."""

from __future__ import annotations

from typing import Any

from mergelab.methods._registry import MergeMethod, Param, all_methods


def describe_param(param: Param) -> dict[str, Any]:
    """One parameter as plain data (``default`` is None when the parameter is required)."""
    return {
        "name": param.name,
        "kind": param.kind,
        "required": param.required,
        "default": None if param.required else param.default,
        "per_model": param.per_model,
        "doc": param.doc,
        "choices": list(param.choices) if param.choices is not None else None,
        "low": param.low,
        "high": param.high,
    }


def describe_method(method: MergeMethod) -> dict[str, Any]:
    """One method as plain data: name, summary, paper, base use, model counts, parameters."""
    return {
        "name": method.name,
        "summary": method.summary,
        "paper": method.paper,
        "base": method.base,
        "min_models": method.min_models,
        "max_models": method.max_models,
        "randomized": method.randomized,
        "params": [describe_param(p) for p in method.params],
    }


def describe_methods() -> list[dict[str, Any]]:
    """Every registered method, sorted by name, as plain (JSON-serialisable) data."""
    return [describe_method(m) for m in all_methods().values()]
