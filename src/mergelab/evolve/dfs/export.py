"""A data-flow path as a standard checkpoint: the scales folded into the weights.

In a pre-norm residual block with RMSNorm, ``block(x) = x + o(n1(x)) + d(n2(x + o(n1(x))))``
(``o`` ends in ``o_proj``, ``d`` in ``down_proj``, ``n1``/``n2`` are RMSNorms, which ignore
a positive factor up to their epsilon). Hence, for ``c > 0``,

    block(c h) = c block'(h),    block' = block with o_proj and down_proj divided by c.

A path runs ``h_{k+1} = L_k(s_k h_k)`` from the embeddings ``h_0``. With the cumulative
scale ``c_k = s_0 s_1 ... s_k`` and ``L'_k`` = ``L_k`` with ``o_proj``/``down_proj`` divided
by ``c_k``, induction gives ``h_{k+1} = c_k g_{k+1}`` for the plain stack
``g_{k+1} = L'_k(g_k)``, ``g_0 = h_0``; the final RMSNorm removes the last ``c``. So the
stack of the path's layers with those two weights divided by ``c_k`` is the path, exactly up
to the norms' epsilon and float rounding.

The export is a mergelab (and mergekit) recipe: ``passthrough`` slices, one per path layer,
each with ``scale`` filters on ``self_attn.o_proj`` and ``mlp.down_proj`` (biases included).
The recipe planner takes the embeddings from the first slice's model and the final norm and
head from the last one's, so a path that starts (ends) with a layer of another model gets a
*carrier*: one of A's layers with ``o_proj`` and ``down_proj`` scaled by 0, which adds 0 to
the residual stream (an exact identity) and brings A's embeddings (norm and head) along.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from mergelab import engine
from mergelab.evolve.dfs.genome import DfsPath
from mergelab.evolve.live_merge import build_model
from mergelab.merge import plan_merge
from mergelab.recipe import Recipe

FOLDED = ("self_attn.o_proj", "mlp.down_proj")


def export_recipe(
    path: DfsPath, refs: Sequence[str], depth_a: int, *, dtype: str | None = None
) -> Recipe:
    """The passthrough recipe whose merge is ``path`` as a plain model (module docstring)."""
    steps = path.steps
    slices: list[dict[str, Any]] = []
    if steps[0].model != 0:
        slices.append(_slice(refs[0], 0, 0.0))  # carrier of A's embeddings
    cumulative = 1.0
    for step in steps:
        cumulative *= step.scale
        slices.append(_slice(refs[step.model], step.layer, 1.0 / cumulative))
    if steps[-1].model != 0:
        slices.append(_slice(refs[0], depth_a - 1, 0.0))  # carrier of A's norm and head
    data: dict[str, Any] = {"merge_method": "passthrough", "slices": slices}
    if dtype is not None:
        data["dtype"] = dtype
    return Recipe.model_validate(data)


def _slice(ref: str, layer: int, factor: float) -> dict[str, Any]:
    """One path layer; ``o_proj`` and ``down_proj`` times ``factor`` (others unchanged)."""
    entry: dict[str, Any] = {"sources": [{"model": ref, "layer_range": [layer, layer + 1]}]}
    if factor != 1.0:
        items: list[dict[str, Any]] = [{"filter": f, "value": factor} for f in FOLDED]
        entry["parameters"] = {"scale": [*items, {"value": 1.0}]}
    return entry


def export_model(recipe: Recipe) -> nn.Module:
    """The recipe merged in memory into a fresh model of its output config (no disk I/O)."""
    plan = plan_merge(recipe)
    try:
        model = build_model(plan)
        sink = engine.ModuleSink(model)
        options = engine.EngineOptions(seed=plan.seed, show_progress=False)
        engine.run(plan.jobs, plan.checkpoints, sink, options, model_names=plan.refs)
    finally:
        plan.close()
    return model


@torch.no_grad()
def max_logit_difference(
    first: nn.Module, second: nn.Module, vocab: int, *, prompts: int = 4, tokens: int = 24
) -> float:
    """Largest |logit difference| of two models on ``prompts`` seeded random token sequences."""
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (prompts, tokens), generator=generator)
    a = first(input_ids=ids).logits.float()
    b = second(input_ids=ids).logits.float()
    return float((a - b).abs().max())
