"""Routers fitted to the experts' prompts: gate_mode ``hidden_fit`` (a mergelab extension).

A router row that is the mean state of an expert's prompts (``hidden``, ``hidden_avg``)
scores each token by its likeness to an average. Tokens whose state is mostly what every
expert's text shares (sentence ends, question words, the answer's first word) then go to
whichever average they happen to lie closest to, and a Mixtral router decides per token.
``hidden_fit`` fits each layer's router as a classifier of the tokens instead:

- x_t: the input of layer l's router at every real token t of every expert's positive
  prompts (bos left out), computed on the base: its post-attention RMSNorm output, which is
  exactly what the MoE's router sees while the experts of the earlier layers act like the
  base's MLP. The label of t is the expert whose prompt it is in.
- R_l [E, H] minimises  sum_e mean_{t of e} -log p_e(x_t) / E
  + sum_e mean_{t of e's negative prompts} -log(1 - p_e(x_t)) / E  + lambda ||R_l||_F^2,
  p = softmax(R_l x): multinomial logistic regression without a bias (a Mixtral router has
  none), each expert weighted equally, lambda = 0.01, L-BFGS from zero in float64
  (deterministic).

The rows are not normalised: their length is the router's confidence. Every row set of the
minimiser sums to zero (the loss only sees row differences), so the router matrix has rank
at most E - 1 and its condition number says nothing; the fit's accuracy on the prompts'
own tokens is what a build reports instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from mergelab.moe.prompts import padded_batches

L2 = 0.01
MAX_ITER = 500
LOW_FIT = 0.9  # a layer whose fit sorts fewer of the prompts' tokens than this is warned


@dataclass(frozen=True)
class TokenStates:
    """Router inputs of every prompt token: ``x[l]`` [T, H] (float64) for layer l, the
    expert of each token's prompt, and whether the prompt was one of its negatives."""

    x: list[torch.Tensor]
    expert: torch.Tensor  # [T] long
    negative: torch.Tensor  # [T] bool


@torch.no_grad()
def router_inputs(
    model: Any,
    groups: Sequence[tuple[int, bool, list[list[int]]]],
    *,
    pad_id: int,
    skip_first: bool,
    batch_size: int = 16,
    device: str = "cpu",
) -> TokenStates:
    """Run ``model`` on each group ``(expert, negative, encoded prompts)`` and collect the
    post-attention RMSNorm output of every layer at every real token (the first one of each
    prompt left out when ``skip_first``: the bos token)."""
    layers = model.model.layers
    caught: list[torch.Tensor] = []
    hooks = [
        layer.post_attention_layernorm.register_forward_hook(
            lambda _m, _a, out: caught.append(out.detach())
        )
        for layer in layers
    ]
    states: list[list[torch.Tensor]] = [[] for _ in layers]
    experts: list[torch.Tensor] = []
    negatives: list[torch.Tensor] = []
    try:
        for expert, negative, encoded in groups:
            for ids, mask in padded_batches(encoded, batch_size, pad_id):
                keep = mask.bool()
                if skip_first:
                    keep[:, 0] = False
                caught.clear()
                model(input_ids=ids.to(device), attention_mask=mask.to(device))
                for layer, out in enumerate(caught):
                    states[layer].append(out.cpu()[keep].double())
                count = int(keep.sum())
                experts.append(torch.full((count,), expert, dtype=torch.long))
                negatives.append(torch.full((count,), negative, dtype=torch.bool))
    finally:
        for hook in hooks:
            hook.remove()
    return TokenStates([torch.cat(s) for s in states], torch.cat(experts), torch.cat(negatives))


def fit_router(
    x: torch.Tensor, expert: torch.Tensor, negative: torch.Tensor, experts: int
) -> tuple[torch.Tensor, float]:
    """The router [E, H] minimising the loss of the module docstring, and the share of the
    positive tokens it routes to their own expert."""
    weight = torch.zeros(experts, x.shape[1], dtype=torch.float64, requires_grad=True)
    pos, neg = ~negative, negative
    optimiser = torch.optim.LBFGS([weight], max_iter=MAX_ITER, line_search_fn="strong_wolfe")

    def per_expert_mean(values: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        sums = torch.zeros(experts, dtype=values.dtype).index_add(0, labels, values)
        counts = torch.bincount(labels, minlength=experts).clamp(min=1)
        return (sums / counts).sum() / experts

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        logp = torch.log_softmax(x @ weight.T, dim=-1)  # [T, E]
        loss = L2 * (weight**2).sum()
        if pos.any():
            own = logp[pos].gather(1, expert[pos, None])[:, 0]
            loss = loss - per_expert_mean(own, expert[pos])
        if neg.any():
            others = logp[neg].clone()
            others.scatter_(1, expert[neg, None], float("-inf"))
            loss = loss - per_expert_mean(torch.logsumexp(others, dim=-1), expert[neg])
        loss.backward()
        return loss

    optimiser.step(closure)
    fitted = weight.detach()
    hits = (x[pos] @ fitted.T).argmax(dim=-1) == expert[pos]
    return fitted.float(), float(hits.double().mean()) if hits.numel() else 1.0
