"""Helpers of the MoE tests: prompts, configs, odd models for errors, and independent
references of the router vectors and of the Mixtral forward pass."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from tiny_models import WORDS, save_tokenizer, tiny_config
from transformers import LlamaForCausalLM

LAYERS = 2

# Prompts over the tiny word-level vocabulary (w0..w59), of different lengths so batches pad.
PROMPTS = {
    "a": ["w1 w2 w3", "w4 w5", "w1 w6 w7 w8 w9"],
    "b": ["w20 w21 w22 w23", "w24"],
    "c": ["w40 w41", "w42 w43 w44 w45 w46 w47"],
}
NEGATIVE = {"b": ["w1 w2", "w30 w31 w32"]}


def mlp_finetune(
    base: dict[str, torch.Tensor], seed: int, scale: float = 0.3
) -> dict[str, torch.Tensor]:
    """``base`` with only the MLP weights moved (as an MLP fine-tune would)."""
    gen = torch.Generator().manual_seed(seed)
    return {
        k: v + scale * torch.randn(v.shape, generator=gen) if ".mlp." in k else v.clone()
        for k, v in base.items()
    }


def moe_config(models: dict[str, Path], **overrides: Any) -> dict[str, Any]:
    """A three-expert config over ``models`` (hidden mode, top-2); ``overrides`` replace keys."""
    config: dict[str, Any] = {
        "base_model": str(models["base"]),
        "gate_mode": "hidden",
        "experts_per_token": 2,
        "experts": [
            {
                "source_model": str(models[name]),
                "positive_prompts": PROMPTS[name],
                **({"negative_prompts": NEGATIVE[name]} if name in NEGATIVE else {}),
            }
            for name in ("a", "b", "c")
        ],
    }
    config.update(overrides)
    return config


def save_llama(folder: Path, **config: Any) -> Path:
    """A tiny Llama with ``config`` changes (e.g. intermediate_size=48), saved with a tokenizer."""
    cfg = tiny_config(LAYERS, len(WORDS))
    for key, value in config.items():
        setattr(cfg, key, value)
    torch.manual_seed(7)
    model = LlamaForCausalLM(cfg)
    model.save_pretrained(str(folder))
    save_tokenizer(folder, WORDS)
    return folder


# -- independent references ------------------------------------------------------------------


def token_ids(prompt: str) -> list[int]:
    """``<bos>`` then each word's id in the word-level vocabulary (no tokenizer involved)."""
    return [WORDS.index("<bos>")] + [WORDS.index(w) for w in prompt.split()]


def caught_inputs(
    model: LlamaForCausalLM, ids: list[int], part: Callable[[Any], torch.nn.Module]
) -> list[torch.Tensor]:
    """The hidden states that ``part(layer)`` of each decoder layer receives ([T, H] each),
    caught by pre-hooks, for one unpadded prompt."""
    caught: list[torch.Tensor] = []

    def hook(module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        states = kwargs.get("hidden_states", args[0] if args else None)
        assert states is not None
        caught.append(states[0].detach().clone())

    handles = [
        part(layer).register_forward_pre_hook(hook, with_kwargs=True)
        for layer in model.model.layers
    ]
    try:
        with torch.no_grad():
            model(input_ids=torch.tensor([ids]))
    finally:
        for h in handles:
            h.remove()
    return caught


def layer_inputs(model: LlamaForCausalLM, ids: list[int]) -> list[torch.Tensor]:
    """The residual stream entering each decoder layer."""
    return caught_inputs(model, ids, lambda layer: layer)


def mlp_inputs(model: LlamaForCausalLM, ids: list[int]) -> list[torch.Tensor]:
    """What each layer's MLP receives: in a Mixtral layer, the router's input."""
    return caught_inputs(model, ids, lambda layer: layer.mlp)


def reference_rows(
    base_dir: Path, positive: list[str], negative: list[str], pool: str
) -> torch.Tensor:
    """Router rows [L, H] of one expert, prompt by prompt: mean over prompts of the pooled
    layer input (last token or mean over tokens), positive minus negative, L2-normalised."""
    model = LlamaForCausalLM.from_pretrained(str(base_dir)).eval()

    def mean(prompts: list[str]) -> torch.Tensor:
        if not prompts:
            return torch.zeros(LAYERS, model.config.hidden_size)
        per_prompt = []
        for p in prompts:
            states = layer_inputs(model, token_ids(p))
            pooled = [s[-1] if pool == "last" else s.mean(dim=0) for s in states]
            per_prompt.append(torch.stack(pooled))
        return torch.stack(per_prompt).mean(dim=0)

    v = mean(positive) - mean(negative)
    return v / v.norm(dim=-1, keepdim=True)


def read_state(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a saved (sharded) model folder, read with safetensors directly."""
    state: dict[str, torch.Tensor] = {}
    for file in sorted(folder.glob("*.safetensors")):
        state.update(load_file(str(file)))
    return state


class ReferenceMoe(torch.nn.Module):
    """A Mixtral sparse MoE block written from the paper (Jiang et al. 2024, eq. 1-2):
    p = softmax(R x); keep the top-k experts; renormalise their weights to sum to 1;
    y = sum_k w_k * down_k(silu(gate_k x) * up_k x)."""

    def __init__(self, router: torch.Tensor, experts: list[dict[str, torch.Tensor]], k: int):
        super().__init__()
        self.router, self.experts, self.k = router, experts, k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])  # [N, H]
        probs = torch.softmax(flat @ self.router.T, dim=-1)  # [N, E]
        weights, chosen = probs.topk(self.k, dim=-1)  # [N, k]
        weights = weights / weights.sum(dim=-1, keepdim=True)
        out = torch.zeros_like(flat)
        for n in range(flat.shape[0]):
            for slot in range(self.k):
                e = self.experts[int(chosen[n, slot])]
                h = torch.nn.functional.silu(flat[n] @ e["gate"].T) * (flat[n] @ e["up"].T)
                out[n] += weights[n, slot] * (h @ e["down"].T)
        return out.reshape(x.shape)


def reference_mixture(
    base_dir: Path,
    expert_dirs: list[Path],
    routers: torch.Tensor,
    k: int,
    residual_scales: list[float] | None = None,
) -> LlamaForCausalLM:
    """The base Llama with every MLP replaced by :class:`ReferenceMoe` over the experts' own
    MLP weights (read from their checkpoints) and routers [L, E, H]."""
    model = LlamaForCausalLM.from_pretrained(str(base_dir)).eval()
    states = [read_state(d) for d in expert_dirs]
    scales = residual_scales or [1.0] * len(expert_dirs)
    for layer in range(LAYERS):
        experts = [
            {
                part: s[f"model.layers.{layer}.mlp.{part}_proj.weight"]
                * (scale if part == "down" else 1.0)
                for part in ("gate", "up", "down")
            }
            for s, scale in zip(states, scales, strict=True)
        ]
        model.model.layers[layer].mlp = ReferenceMoe(routers[layer], experts, k)
    return model
