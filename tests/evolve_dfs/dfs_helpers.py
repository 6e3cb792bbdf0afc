"""Helpers for the DFS tests: tiny models of several families, a path stacked by hand, and
synthetic evaluators (module-level classes, so worker processes can unpickle them).

The reference path model is built without mergelab: a fresh ``*ForCausalLM`` of A's config
with one layer per path step, its state dict assembled from the saved safetensors files
(layer tensors renamed to their path position), and forward pre-hooks on the layers that
multiply the hidden state entering each step by its scale.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from tiny_models import WORDS, save_tokenizer
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    MistralConfig,
    Qwen2Config,
    Qwen3Config,
)

LAYERS = 3
FAMILIES = {
    "llama": LlamaConfig,
    "mistral": MistralConfig,
    "qwen2": Qwen2Config,
    "qwen3": Qwen3Config,
}
IDS = torch.tensor([[5, 9, 17, 33, 8, 21, 40, 12], [7, 7, 50, 3, 26, 14, 30, 61]])

Layer = tuple[int, int]  # (model index, layer index)


def save_family_model(
    folder: Path,
    seed: int,
    *,
    family: str = "llama",
    layers: int = LAYERS,
    hidden: int = 32,
    words: list[str] = WORDS,
    **config: Any,
) -> Path:
    """A tiny random model of ``family`` with a word-level tokenizer, saved to ``folder``."""
    torch.manual_seed(seed)
    cfg = FAMILIES[family](
        vocab_size=len(words),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        tie_word_embeddings=False,
        bos_token_id=2,
        eos_token_id=3,
        pad_token_id=0,
        **config,
    )
    model = AutoModelForCausalLM.from_config(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.2)
    model.save_pretrained(str(folder))
    save_tokenizer(folder, words)
    return folder


def save_gpt2(folder: Path) -> Path:
    """A tiny GPT-2 (not of the Llama family) with the test tokenizer."""
    cfg = GPT2Config(vocab_size=len(WORDS), n_embd=32, n_layer=2, n_head=4, n_positions=64)
    GPT2LMHeadModel(cfg).save_pretrained(str(folder))
    save_tokenizer(folder, WORDS)
    return folder


def load_state(folder: Path) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for file in sorted(folder.glob("*.safetensors")):
        state.update(load_file(file))
    return state


def stacked_by_hand(
    folders: Sequence[Path], path: Sequence[Layer], scales: Sequence[float] | None = None
) -> nn.Module:
    """The path as a model of A's config, stacked from the files, scales applied by hooks."""
    states = [load_state(f) for f in folders]
    config = AutoConfig.from_pretrained(str(folders[0]))
    config.num_hidden_layers = len(path)
    if getattr(config, "layer_types", None) is not None:
        config.layer_types = [config.layer_types[0]] * len(path)
    model = AutoModelForCausalLM.from_config(config)
    state = {k: v for k, v in states[0].items() if ".layers." not in k}
    for position, (m, layer) in enumerate(path):
        prefix = f"model.layers.{layer}."
        for name, tensor in states[m].items():
            if name.startswith(prefix):
                state[f"model.layers.{position}." + name[len(prefix) :]] = tensor
    model.load_state_dict(state, strict=True)
    for layer_module, scale in zip(model.model.layers, scales or [1.0] * len(path), strict=True):
        if scale != 1.0:
            layer_module.register_forward_pre_hook(_scaler(scale), with_kwargs=True)
    return model.eval()


def _scaler(scale: float) -> Any:
    def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if args:
            return (args[0] * scale, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": kwargs["hidden_states"] * scale}

    return hook


@torch.no_grad()
def logits(model: nn.Module, ids: torch.Tensor = IDS) -> torch.Tensor:
    return model(input_ids=ids).logits.float()


class MatchLogits:
    """``{"score": -max |logits - target|}`` on fixed token ids: 0 exactly at the target.

    ``sleep`` slows every call down; ``progress`` gets one line per finished call.
    """

    def __init__(
        self, target: torch.Tensor, *, sleep: float = 0.0, progress: Path | None = None
    ) -> None:
        self.target = target
        self.sleep = sleep
        self.progress = progress

    def __call__(self, model: nn.Module) -> dict[str, float]:
        if self.sleep:
            time.sleep(self.sleep)
        score = -float((logits(model) - self.target).abs().max())
        if self.progress is not None:
            with self.progress.open("a") as handle:
                handle.write(f"{os.getpid()}\n")
        return {"score": score, "pid": float(os.getpid())}


def dfs_config(models: Sequence[Path], *, trials: int = 8, **dfs: Any) -> dict[str, Any]:
    """A DFS search over ``models`` (A first) matching a target's logits."""
    return {
        "space": "dfs",
        "dfs": {"models": [str(m) for m in models], **dfs},
        "objectives": [{"evaluator": "match", "metric": "score"}],
        "budget": {"trials": trials},
        "seed": 0,
    }


def main() -> None:
    """A slow DFS search: ``python -c '...main()' MODELS_JSON OUT_DIR TRIALS``.

    Each evaluation appends a line to ``OUT_DIR.calls``.
    """
    from mergelab.evolve import evolve

    models = [Path(p) for p in json.loads(sys.argv[1])]
    out, trials = Path(sys.argv[2]), int(sys.argv[3])
    target = logits(stacked_by_hand(models, [(0, 0), (0, 1), (1, 1), (0, 2)]))
    match = MatchLogits(target, sleep=0.3, progress=Path(f"{out}.calls"))
    evolve(dfs_config(models, trials=trials, scaling="none"), out, evaluators={"match": match})
