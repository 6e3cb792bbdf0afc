"""Training of one zoo model: a tiny ``LlamaForCausalLM`` pretrained or fine-tuned on a mix.

Plain AdamW on masked next-token cross-entropy, linear warm-up then cosine decay to 10%.
Fine-tunes train only the parameters their recipe names, each layer at its own learning-rate
multiplier (0 = frozen), so task vectors stay small and local: the localised-fine-tuning
finding of the zoo prototype (full fine-tunes of all weights interfered when merged).
Deterministic: seeded initialisation and data order, and the caller sets one intra-op thread.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM

from mergelab.zoo.tokenizer import BOS_ID, EOS_ID, PAD_ID

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Shape:
    """Architecture of every zoo model (all homologous)."""

    vocab_size: int
    hidden: int = 64
    layers: int = 6
    heads: int = 4
    mlp: int = 172

    def config(self) -> LlamaConfig:
        return LlamaConfig(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden,
            intermediate_size=self.mlp,
            num_hidden_layers=self.layers,
            num_attention_heads=self.heads,
            num_key_value_heads=self.heads,
            max_position_embeddings=128,
            rms_norm_eps=1e-5,
            # std 0.1 (HF default 0.02): at width 64 the lookup-by-name circuit forms in far
            # fewer steps (reading at step 500: 0.32 vs 0.06)
            initializer_range=0.1,
            tie_word_embeddings=False,
            pad_token_id=PAD_ID,
            bos_token_id=BOS_ID,
            eos_token_id=EOS_ID,
        )


def new_model(shape: Shape, seed: int) -> LlamaForCausalLM:
    """A freshly initialised model; the weights depend only on ``seed``."""
    torch.manual_seed(seed)
    model = LlamaForCausalLM(shape.config())
    return model.float()


def param_groups(
    model: torch.nn.Module, parts: tuple[str, ...], layer_lr: tuple[float, ...], lr: float
) -> list[dict[str, object]]:
    """Optimizer groups: parameters whose name contains one of ``parts`` (``"mlp"``,
    ``"self_attn"``, ``"layernorm"``, ``"embed_tokens"``, ``"lm_head"``, ``"norm"``...), at
    ``lr * layer_lr[i]`` inside layer ``i`` and at ``lr`` outside the layers; others frozen."""
    groups: dict[float, list[torch.nn.Parameter]] = {}
    for name, p in model.named_parameters():
        scale = 0.0
        if any(part in name for part in parts):
            fields = name.split(".")
            scale = layer_lr[int(fields[fields.index("layers") + 1])] if "layers" in fields else 1.0
        p.requires_grad_(scale > 0)
        if scale > 0:
            groups.setdefault(scale, []).append(p)
    return [{"params": ps, "lr": lr * s, "base_lr": lr * s} for s, ps in sorted(groups.items())]


def train(
    model: LlamaForCausalLM,
    batches: list[tuple[torch.Tensor, torch.Tensor]],
    groups: list[dict[str, object]],
    *,
    weight_decay: float,
    on_step: Callable[[int, float], None] | None = None,
) -> float:
    """Run one pass over ``batches``; returns the mean loss of the last 10% of steps.

    loss = CE(logits[:, t-1], ids[:, t]) averaged over positions t with mask[:, t] true.
    """
    opt = torch.optim.AdamW(groups, weight_decay=weight_decay, betas=(0.9, 0.98))
    steps = len(batches)
    warm = max(1, steps // 20)
    tail: list[float] = []
    model.train()
    for step, (ids, mask) in enumerate(batches):
        # lr(step) = base_lr * min(1, (step+1)/warm) * (0.1 + 0.9 * (1 + cos(pi * s)) / 2)
        progress = step / max(1, steps - 1)
        factor = min(1.0, (step + 1) / warm) * (0.1 + 0.45 * (1 + math.cos(math.pi * progress)))
        for g in opt.param_groups:
            g["lr"] = g["base_lr"] * factor
        # right padding only: causal attention never lets a real token see a pad
        logits = model(input_ids=ids).logits  # (B, T, V)
        loss = F.cross_entropy(logits[:, :-1][mask[:, 1:]], ids[:, 1:][mask[:, 1:]])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        value = float(loss.detach())
        if step >= steps - max(1, steps // 10):
            tail.append(value)
        if on_step is not None:
            on_step(step, value)
    model.eval()
    return sum(tail) / len(tail)
