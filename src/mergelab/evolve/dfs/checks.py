"""Which models a data-flow search can combine, checked before any weight is read.

A path runs A's embeddings, then layers of any of the models, then A's final norm and head,
and is exported as one standard checkpoint of A's architecture with the scales folded into
the weights. So the models must

- be of one supported family: pre-norm residual blocks with RMSNorm and no norm after the
  sub-blocks, where ``block(s h) = s block'(h)`` with ``o_proj`` and ``down_proj`` divided by
  ``s`` (:data:`SUPPORTED_FAMILIES`; Gemma's extra norms and embedding scaling break this);
- share the residual width (``hidden_size``): one hidden state flows through every layer;
- share the layer shape and numerics of A (sizes, heads, activation, norm epsilon, rotary
  settings), since the export has one config for all its layers, and one attention type for
  all layers (no model mixing full and sliding-window layers);
- use A's tokenizer: every layer reads hidden states made from A's token embeddings.

Only config.json and the tokenizer files are read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from transformers import AutoConfig, PretrainedConfig

from mergelab.errors import MergelabError
from mergelab.evolve.dfs.config import DfsSpec
from mergelab.model_ref import resolve_model_ref, split_lora_ref
from mergelab.vocab import load_vocab

SUPPORTED_FAMILIES = ("llama", "mistral", "qwen2", "qwen3")

# config fields that change what a decoder layer computes (absent ones read as None)
LAYER_KEYS = (
    "intermediate_size",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "hidden_act",
    "attention_bias",
    "mlp_bias",
    "rms_norm_eps",
    "rope_theta",
    "rope_scaling",
    "rope_parameters",
    "sliding_window",
    "use_sliding_window",
)


@dataclass(frozen=True)
class DfsModel:
    """A model of a data-flow search: its folder, its transformers config, its depth."""

    ref: str
    path: Path
    config: PretrainedConfig

    @property
    def depth(self) -> int:
        return int(self.config.num_hidden_layers)


def open_dfs_model(ref: str) -> DfsModel:
    """The folder and config of ``ref``; MergelabError when it is no usable model folder."""
    if split_lora_ref(ref)[1] is not None:
        raise MergelabError(
            f"DFS model {ref} has a LoRA adapter; DFS runs whole models, so merge the adapter "
            "into its model first (mergelab merge) and give that folder"
        )
    path = resolve_model_ref(ref)
    try:
        config = AutoConfig.from_pretrained(str(path))
    except (OSError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MergelabError(
            f"DFS model {ref} has no usable config.json ({first}); give a transformers model folder"
        ) from None
    return DfsModel(ref, path, config)


def check_dfs_models(refs: Sequence[str], spec: DfsSpec, *, first: str | None = None) -> list[str]:
    """Every reason the models ``refs`` (A first) cannot be searched together; [] when fine.

    ``first`` names A in messages when it is not a plain reference (the PS model of ps+dfs).
    """
    problems: list[str] = []
    models: list[DfsModel] = []
    for ref in refs:
        try:
            models.append(open_dfs_model(ref))
        except MergelabError as exc:
            problems.append(str(exc))
    if problems:
        return problems
    names = [first or models[0].ref, *(m.ref for m in models[1:])]
    a = models[0]
    for name, model in zip(names, models, strict=True):
        family = model.config.model_type
        if family not in SUPPORTED_FAMILIES:
            problems.append(
                f"{name} is a {family} model; DFS supports the Llama family "
                f"({', '.join(SUPPORTED_FAMILIES)}): pre-norm RMSNorm blocks, whose scaling "
                "folds into the weights"
            )
        types = set(getattr(model.config, "layer_types", None) or [])
        if len(types) > 1:
            problems.append(
                f"{name} mixes attention types ({', '.join(sorted(types))}); DFS needs one "
                "attention type for all layers"
            )
    if problems:
        return problems
    for name, model in zip(names[1:], models[1:], strict=True):
        problems += _against_a(name, model, names[0], a)
    if spec.fix_ends and a.depth < 2:
        problems.append(
            f"dfs.fix_ends needs A ({names[0]}) to have 2 or more layers (it has {a.depth}); "
            "set fix_ends: false"
        )
    return problems


def _against_a(name: str, model: DfsModel, a_name: str, a: DfsModel) -> list[str]:
    """Problems of one model next to A: family, residual width, layer shape, tokenizer."""
    if model.config.model_type != a.config.model_type:
        return [
            f"the DFS models must be one family: {a_name} is {a.config.model_type}, {name} is "
            f"{model.config.model_type}"
        ]
    width, a_width = model.config.hidden_size, a.config.hidden_size
    if width != a_width:
        return [
            f"DFS needs a shared residual width: {a_name} has hidden_size {a_width}, {name} "
            f"has hidden_size {width}; choose models of one width"
        ]
    problems = []
    differ = [
        f"{key} {getattr(model.config, key, None)!r} vs {getattr(a.config, key, None)!r}"
        for key in LAYER_KEYS
        if getattr(model.config, key, None) != getattr(a.config, key, None)
    ]
    if differ:
        problems.append(
            f"the layers of {name} differ from A's ({'; '.join(differ)}); DFS exports one model "
            "with A's config, so every layer must have A's shape"
        )
    vocab, a_vocab = load_vocab(model.path), load_vocab(a.path)
    if a_vocab is None:
        problems.append(f"{a_name} has no tokenizer files; DFS uses A's tokenizer, save it there")
    elif vocab != a_vocab:
        problems.append(
            f"DFS needs A's tokenizer in every model: {name}'s tokenizer differs from "
            f"{a_name}'s ({len(vocab or {})} vs {len(a_vocab)} tokens); every layer reads "
            "hidden states made from A's token embeddings"
        )
    return problems
