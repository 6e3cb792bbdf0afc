"""Tensor-name conventions of decoder-only transformers (Llama, Mistral, Qwen2, GPT-2 ...).

A tensor is either *pre* (before the layers: token/position embeddings), a *layer* tensor
(``...layers.<i>...``, ``...h.<i>...``, ``...blocks.<i>...``) or *post* (final norm, lm_head).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Literal

_LAYER_RE = re.compile(r"^(?P<head>.*?\.(?:layers|h|blocks|layer)\.)(?P<index>\d+)(?P<tail>\..+)$")
_PRE_MARKERS = ("embed_tokens", "wte", "wpe", "embed_in", "word_embeddings", "tok_embeddings")
_VOCAB_MARKERS = ("embed_tokens", "wte", "embed_in", "embed_out", "lm_head", "word_embeddings")
_LAYER_COUNT_KEYS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers")

Position = Literal["pre", "layer", "post"]


def layer_index(name: str) -> int | None:
    """The layer a tensor belongs to (``model.layers.3.mlp...`` -> 3), or None."""
    match = _LAYER_RE.match(name)
    return int(match["index"]) if match else None


def with_layer_index(name: str, index: int) -> str:
    """``name`` moved to layer ``index``; ``name`` must be a layer tensor."""
    match = _LAYER_RE.match(name)
    if match is None:
        raise ValueError(f"{name!r} is not a layer tensor")
    return f"{match['head']}{index}{match['tail']}"


def position(name: str) -> Position:
    """Where a tensor sits in the network: before, inside or after the layer stack."""
    if layer_index(name) is not None:
        return "layer"
    return "pre" if any(m in name for m in _PRE_MARKERS) else "post"


def is_vocab_tensor(name: str) -> bool:
    """Tensors with one row per vocabulary entry (input embeddings, output head)."""
    return layer_index(name) is None and any(m in name for m in _VOCAB_MARKERS)


def count_layers(config: dict[str, Any] | None, names: Iterable[str]) -> int:
    """Layer count from the config, else from the tensor names."""
    for key in _LAYER_COUNT_KEYS:
        value = (config or {}).get(key)
        if isinstance(value, int):
            return value
    found = [i for i in (layer_index(n) for n in names) if i is not None]
    return max(found) + 1 if found else 0


def set_layer_count(config: dict[str, Any], count: int) -> None:
    """Write ``count`` into whichever layer-count key the config uses.

    A per-layer ``layer_types`` list (Qwen2, Qwen3, ...) must keep one entry per layer:
    one type for all layers is repeated ``count`` times; a mix is dropped, so transformers
    derives it again from the config's other settings.
    """
    types = config.get("layer_types")
    if isinstance(types, list):
        if len(set(types)) == 1:
            config["layer_types"] = types[:1] * count
        else:
            del config["layer_types"]
    for key in _LAYER_COUNT_KEYS:
        if key in config:
            config[key] = count
            return
    config["num_hidden_layers"] = count
