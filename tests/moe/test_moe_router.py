"""Router vectors against an independent computation on the tiny model, for every gate mode."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from moe_helpers import (
    NEGATIVE,
    PROMPTS,
    mlp_inputs,
    moe_config,
    read_state,
    reference_rows,
    token_ids,
)
from tiny_models import WORDS

from mergelab.moe import plan_moe, router_weights


def routers_for(models: dict[str, Path], **overrides: object) -> torch.Tensor:
    plan = plan_moe(moe_config(models, **overrides))
    try:
        return router_weights(plan)
    finally:
        plan.close()


@pytest.mark.parametrize(("mode", "pool"), [("hidden", "last"), ("hidden_avg", "mean")])
def test_hidden_modes_match_prompt_by_prompt_hooks(
    moe_models: dict[str, Path], mode: str, pool: str
) -> None:
    routers = routers_for(moe_models, gate_mode=mode)  # [L, E, H]
    assert routers.shape == (2, 3, 32)
    for e, name in enumerate(("a", "b", "c")):
        expected = reference_rows(moe_models["base"], PROMPTS[name], NEGATIVE.get(name, []), pool)
        torch.testing.assert_close(routers[:, e], expected, atol=2e-6, rtol=1e-5)
    # every row is a unit vector
    torch.testing.assert_close(routers.norm(dim=-1), torch.ones(2, 3))


def test_hidden_avg_masks_padding(moe_models: dict[str, Path]) -> None:
    """Averaging padded positions too (mergekit's way) gives a different, wrong row."""
    routers = routers_for(moe_models, gate_mode="hidden_avg")
    from transformers import LlamaForCausalLM

    from mergelab.moe.hidden import mean_states

    model = LlamaForCausalLM.from_pretrained(str(moe_models["base"])).eval()
    prompts = PROMPTS["a"]  # lengths 4, 3, 6 with bos: padded to 6
    padded = [token_ids(p) + [0] * (6 - len(token_ids(p))) for p in prompts]
    with_pads = mean_states(model, padded, layers=2, pool="mean", pad_id=0)  # pads as tokens
    row = with_pads / with_pads.norm(dim=-1, keepdim=True)
    assert (row - routers[:, 0]).abs().max() > 1e-3


def test_cheap_embed_is_normalised_sum_of_prompt_embeddings(moe_models: dict[str, Path]) -> None:
    routers = routers_for(moe_models, gate_mode="cheap_embed")
    embed = read_state(moe_models["base"])["model.embed_tokens.weight"]
    for e, name in enumerate(("a", "b", "c")):
        v = sum(embed[WORDS.index(w)] for p in PROMPTS[name] for w in p.split())
        v = v - sum(
            (embed[WORDS.index(w)] for p in NEGATIVE.get(name, []) for w in p.split()),
            torch.zeros(32),
        )
        expected = v / v.norm()
        for layer in range(2):  # the same row in every layer
            torch.testing.assert_close(routers[layer, e], expected, atol=1e-6, rtol=1e-5)


def test_random_mode_is_standard_normal_and_seeded(moe_models: dict[str, Path]) -> None:
    a = routers_for(moe_models, gate_mode="random", seed=1)
    b = routers_for(moe_models, gate_mode="random", seed=1)
    c = routers_for(moe_models, gate_mode="random", seed=2)
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert not torch.equal(a, c)
    assert abs(float(a.mean())) < 0.25  # 192 draws of N(0, 1): sd of the mean is 0.07
    assert 0.8 < float(a.std()) < 1.2


def test_uniform_random_mode_is_bounded_by_one_over_sqrt_h(moe_models: dict[str, Path]) -> None:
    rows = routers_for(moe_models, gate_mode="uniform_random", seed=3)
    bound = 1 / math.sqrt(32)
    assert float(rows.abs().max()) <= bound
    # U(-b, b) has variance b^2 / 3
    assert abs(float(rows.var()) - bound**2 / 3) < 0.25 * bound**2 / 3


def test_noise_scale_adds_noise_to_that_experts_row_only(moe_models: dict[str, Path]) -> None:
    clean = routers_for(moe_models, gate_mode="cheap_embed")
    config = moe_config(moe_models, gate_mode="cheap_embed")
    config["experts"][1]["noise_scale"] = 0.5
    plan = plan_moe(config)
    try:
        noisy = router_weights(plan)
    finally:
        plan.close()
    torch.testing.assert_close(noisy[:, [0, 2]], clean[:, [0, 2]], atol=0, rtol=0)
    noise = noisy[:, 1] - clean[:, 1]
    assert 0.35 < float(noise.std()) < 0.65  # 64 draws of 0.5 * N(0, 1)


def fit_loss(weight: torch.Tensor, groups: list[tuple[int, bool, torch.Tensor]]) -> torch.Tensor:
    """The hidden_fit objective, term by term: per expert, the mean -log p_e over its positive
    tokens and the mean -log(1 - p_e) over its negative ones, averaged over the 3 experts,
    plus 0.01 ||W||^2."""
    terms: dict[tuple[int, bool], list[torch.Tensor]] = {}
    for e, negative, x in groups:
        p = torch.softmax(x @ weight.T, dim=-1)[:, e]
        terms.setdefault((e, negative), []).append(-torch.log(1 - p if negative else p))
    loss = 0.01 * (weight**2).sum()
    for values in terms.values():
        loss = loss + torch.cat(values).mean() / 3
    return loss


def test_hidden_fit_is_the_minimiser_of_its_objective(moe_models: dict[str, Path]) -> None:
    """The objective is strictly convex, so a zero gradient at the returned routers (on
    router inputs caught independently, prompt by prompt) proves they are its minimiser."""
    from transformers import LlamaForCausalLM

    routers = routers_for(moe_models, gate_mode="hidden_fit").double()  # [L, E, H]
    model = LlamaForCausalLM.from_pretrained(str(moe_models["base"])).eval()
    per_prompt = {
        (e, negative, prompt): [s.double() for s in mlp_inputs(model, token_ids(prompt))]
        for e, name in enumerate(("a", "b", "c"))
        for negative, prompts in ((False, PROMPTS[name]), (True, NEGATIVE.get(name, [])))
        for prompt in prompts
    }
    for layer in range(2):
        groups = [(e, neg, states[layer][1:]) for (e, neg, _), states in per_prompt.items()]
        weight = routers[layer].clone().requires_grad_(True)
        fit_loss(weight, groups).backward()
        assert weight.grad is not None
        assert float(weight.grad.norm()) < 1e-4
        # the loss sees only row differences, so the L2 term makes the rows sum to zero
        torch.testing.assert_close(
            routers[layer].sum(dim=0), torch.zeros(32).double(), atol=1e-5, rtol=0
        )


def test_hidden_fit_warns_of_layers_where_prompts_read_alike(moe_models: dict[str, Path]) -> None:
    from mergelab.moe.router import initial_routers

    same = ["w1 w2 w3", "w4 w5"]
    config = moe_config(moe_models, gate_mode="hidden_fit")
    for e, expert in enumerate(config["experts"]):
        expert["positive_prompts"] = [*same, f"w{10 + e}"]  # one distinct token each
        expert.pop("negative_prompts", None)
    plan = plan_moe(config)
    try:
        warnings = initial_routers(plan).warnings
    finally:
        plan.close()
    assert len(warnings) == 1
    assert "fitted router of layer(s) 0" in warnings[0]
    assert "prompts read alike" in warnings[0]
