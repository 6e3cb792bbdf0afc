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
- ``hidden_fit`` (mergelab; not in mergekit): each layer's router fitted as a classifier of
  the prompts' tokens, :mod:`mergelab.moe.fit`.
- ``noise_scale`` s: row += s * N(0, I) after the above (spec; mergekit instead adds the
  noise to the expert's MLP weights).

Randomness comes from generators seeded by (seed, purpose, expert), never the global RNG.
Only the hidden modes run the base model; nothing else is ever run.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from mergelab.engine import tensor_seed
from mergelab.errors import PlanError
from mergelab.moe.conditioning import conditioning_warnings
from mergelab.moe.config import ExpertConfig
from mergelab.moe.fit import LOW_FIT, fit_router, router_inputs
from mergelab.moe.hidden import Pool, mean_states
from mergelab.moe.plan import MoePlan
from mergelab.moe.prompts import bos_id, encode, pad_id

log = logging.getLogger(__name__)

EMBED = "model.embed_tokens.weight"

States = Callable[[list[str] | None], torch.Tensor]


@dataclass(frozen=True)
class Routers:
    """The router matrices ``weights`` [L, E, H] (float32) and what is wrong with them;
    ``conditioned``: whether their condition numbers mean anything (not for fitted ones)."""

    weights: torch.Tensor
    warnings: list[str]
    conditioned: bool = True


def router_weights(plan: MoePlan, *, device: str = "cpu", batch_size: int = 16) -> torch.Tensor:
    """The router matrices [L, E, H] (float32) for ``plan``'s gate mode and experts."""
    return initial_routers(plan, device=device, batch_size=batch_size).weights


def initial_routers(plan: MoePlan, *, device: str = "cpu", batch_size: int = 16) -> Routers:
    """:func:`router_weights` with its warnings: ill-conditioned layers, or for
    ``hidden_fit`` the layers whose fit misroutes many of the prompts' own tokens."""
    if plan.config.gate_mode == "hidden_fit":
        rows, accuracy = _hidden_fit(plan, device, batch_size)
        weak = [f"{layer} ({acc:.0%})" for layer, acc in enumerate(accuracy) if acc < LOW_FIT]
        warnings = (
            [
                f"the fitted router of layer(s) {', '.join(weak)} routes under "
                f"{LOW_FIT:.0%} of the prompts' own tokens to their expert: the experts' "
                "prompts read alike there; give each expert prompts only its skill sees"
            ]
            if weak
            else []
        )
        return Routers(_add_noise(plan, rows), warnings, conditioned=False)
    rows = _add_noise(plan, _rows(plan, device, batch_size))
    names = [e.source_model for e in plan.config.experts]
    return Routers(rows, conditioning_warnings(list(rows), names))


def _rows(plan: MoePlan, device: str, batch_size: int) -> torch.Tensor:
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
    return rows


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


def _base_model(plan: MoePlan, device: str) -> Any:
    from transformers import AutoModelForCausalLM

    log.info("running the base model %s on the experts' prompts", plan.refs[0])
    model = AutoModelForCausalLM.from_pretrained(str(plan.base.path), dtype="auto")
    return model.to(device).eval()  # type: ignore[arg-type]


def _hidden_fit(plan: MoePlan, device: str, batch_size: int) -> tuple[torch.Tensor, list[float]]:
    """Per layer: the fitted router [E, H] and its accuracy on the prompts' tokens."""
    tokenizer = _tokenizer(plan)
    model = _base_model(plan, device)
    bos = bos_id(tokenizer, plan.mixtral.bos_token_id)
    groups = [
        (e, negative, encode(tokenizer, prompts, bos))
        for e, expert in enumerate(plan.config.experts)
        for negative, prompts in ((False, expert.positive_prompts), (True, expert.negative_prompts))
        if prompts
    ]
    states = router_inputs(
        model,
        groups,
        pad_id=pad_id(tokenizer),
        skip_first=bos is not None,
        batch_size=batch_size,
        device=device,
    )
    fits = [fit_router(x, states.expert, states.negative, len(plan.experts)) for x in states.x]
    return torch.stack([w for w, _ in fits]), [acc for _, acc in fits]


def _hidden(plan: MoePlan, pool: Pool, device: str, batch_size: int) -> torch.Tensor:
    tokenizer = _tokenizer(plan)
    model = _base_model(plan, device)
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
