"""Router initialisation: one router row per expert and layer, from prompts or at random.

The recipe of mergekit-moe (Goddard et al. 2024, "Arcee's MergeKit", arXiv 2403.13257;
behaviour measured on mergekit 0.1.5), per layer l and expert e:

- ``hidden``: v = mean_p h_l(bos + p)[last] over positive prompts p, minus the same mean
  over negative prompts; row = v / ||v||_2. h_l is the residual stream entering layer l.
- ``hidden_avg``: as ``hidden`` with h_l averaged over the prompt's real tokens (mergekit
  also averages padding positions; mergelab masks them).
- ``cheap_embed``: v = sum of the input embeddings of every prompt token, minus the same sum
  over negative prompts; row = v / ||v||_2, the same for every layer. Deviation: mergekit
  also sums the bos embedding, which adds the same vector to every expert; it is left out.
- ``random``: rows ~ N(0, 1); ``uniform_random``: rows ~ U(-1/sqrt(H), 1/sqrt(H)), torch's
  default ``nn.Linear`` initialisation.
- ``noise_scale`` s: row += s * N(0, I) after the above (spec; mergekit instead adds the
  noise to the expert's MLP weights).

Randomness comes from generators seeded by (seed, purpose, expert), never the global RNG.
Only the hidden modes run the base model; nothing else is ever run.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import torch

from mergelab.engine import tensor_seed
from mergelab.errors import PlanError
from mergelab.moe.config import ExpertConfig
from mergelab.moe.hidden import Pool, mean_states
from mergelab.moe.plan import MoePlan
from mergelab.moe.prompts import bos_id, encode, pad_id

log = logging.getLogger(__name__)

EMBED = "model.embed_tokens.weight"

States = Callable[[list[str] | None], torch.Tensor]


def router_weights(plan: MoePlan, *, device: str = "cpu", batch_size: int = 16) -> torch.Tensor:
    """The router matrices [L, E, H] (float32) for ``plan``'s gate mode and experts."""
    mode = plan.config.gate_mode
    shape = (plan.layers, len(plan.experts), plan.hidden)
    if mode in ("random", "uniform_random"):
        gen = torch.Generator().manual_seed(tensor_seed(plan.seed, f"router:{mode}", 0))
        if mode == "random":
            rows = torch.randn(shape, generator=gen)
        else:
            bound = 1.0 / math.sqrt(plan.hidden)
            rows = (torch.rand(shape, generator=gen) * 2 - 1) * bound
    elif mode == "cheap_embed":
        rows = _cheap_embed(plan)
    else:
        rows = _hidden(plan, "last" if mode == "hidden" else "mean", device, batch_size)
    return _add_noise(plan, rows)


def _normalised(v: torch.Tensor) -> torch.Tensor:
    """v / ||v||_2 along the last axis (a zero vector stays zero)."""
    return v / v.norm(dim=-1, keepdim=True).clamp(min=1e-8)


def _tokenizer(plan: MoePlan) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(plan.base.path))
    except (OSError, ValueError, TypeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PlanError(
            f"cannot load the tokenizer of base model {plan.refs[0]} ({reason}); gate_mode "
            f"'{plan.config.gate_mode}' needs it to read the prompts: add the tokenizer files"
        ) from None


def _cheap_embed(plan: MoePlan) -> torch.Tensor:
    tokenizer = _tokenizer(plan)
    embed = plan.base.read(EMBED).float()  # [V, H]

    def summed(prompts: list[str] | None) -> torch.Tensor:
        ids = [i for row in encode(tokenizer, prompts or [], None) for i in row]
        return (
            embed[torch.tensor(ids, dtype=torch.long)].sum(dim=0)
            if ids
            else torch.zeros(plan.hidden)
        )

    rows = []
    for expert in plan.config.experts:
        v = summed(expert.positive_prompts) - summed(expert.negative_prompts)  # [H]
        rows.append(_normalised(v))
    return torch.stack(rows)[None].expand(plan.layers, -1, -1).clone()  # [L, E, H]


def _hidden(plan: MoePlan, pool: Pool, device: str, batch_size: int) -> torch.Tensor:
    from transformers import AutoModelForCausalLM

    tokenizer = _tokenizer(plan)
    log.info("running the base model %s on the experts' prompts", plan.refs[0])
    model = AutoModelForCausalLM.from_pretrained(str(plan.base.path), dtype="auto")
    model = model.to(device).eval()  # type: ignore[arg-type]
    bos = bos_id(tokenizer, plan.mixtral.bos_token_id)
    pad = pad_id(tokenizer)

    def states(prompts: list[str] | None) -> torch.Tensor:
        if not prompts:
            return torch.zeros(plan.layers, plan.hidden)
        encoded = encode(tokenizer, prompts, bos)
        return mean_states(
            model,
            encoded,
            layers=plan.layers,
            pool=pool,
            pad_id=pad,
            batch_size=batch_size,
            device=device,
        )

    rows = [_expert_rows(e, states) for e in plan.config.experts]  # each [L, H]
    return torch.stack(rows, dim=1)  # [L, E, H]


def _expert_rows(expert: ExpertConfig, states: States) -> torch.Tensor:
    """v = mean state over positive prompts - mean over negative prompts; v / ||v|| ([L, H])."""
    return _normalised(states(expert.positive_prompts) - states(expert.negative_prompts))


def _add_noise(plan: MoePlan, rows: torch.Tensor) -> torch.Tensor:
    for e, expert in enumerate(plan.config.experts):
        if expert.noise_scale:
            gen = torch.Generator().manual_seed(tensor_seed(plan.seed, "router:noise", e))
            rows[:, e] += expert.noise_scale * torch.randn(rows[:, e].shape, generator=gen)
    return rows
