"""The routing report against an independent computation, and the conditioning warnings."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from moe_helpers import PROMPTS, moe_config, token_ids
from transformers import AutoModelForCausalLM

from mergelab.moe import HeldOut, build_moe, held_out_prompts, load_moe_config, routing_report
from mergelab.moe.conditioning import closest_pair, condition_number

EVAL = {
    "a": ["w2 w3 w1", "w6 w7", "w5 w4 w1 w2"],
    "b": ["w21 w22", "w23 w20 w24"],
    "c": ["w43 w44 w40", "w46 w47"],
}


@pytest.fixture(scope="module")
def built(moe_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "moe"
    build_moe(moe_config(moe_models), out)
    return out


def router_probs_by_hand(model: Any, prompt: str) -> torch.Tensor:
    """softmax(R_l x) for each layer l and token of one unpadded prompt, caught at each
    router's input by a forward hook: [L, T, E]."""
    caught: list[torch.Tensor] = []

    def hook(module: torch.nn.Module, args: tuple[Any, ...], output: Any) -> None:
        x = args[0].reshape(-1, module.weight.shape[1])
        caught.append(torch.softmax(x @ module.weight.T, dim=-1))

    handles = [layer.mlp.gate.register_forward_hook(hook) for layer in model.model.layers]
    try:
        with torch.no_grad():
            model(input_ids=torch.tensor([token_ids(prompt)]))
    finally:
        for h in handles:
            h.remove()
    return torch.stack(caught)


def test_report_matches_routing_computed_by_hand(built: Path) -> None:
    groups = [HeldOut(EVAL[n], True) for n in "abc"]
    report = routing_report(built, groups, names=["a", "b", "c"])
    model = AutoModelForCausalLM.from_pretrained(str(built)).eval()
    hits, total = 0, 0
    per_expert = {e: [0, 0] for e in range(3)}
    routed = iter(report.prompts)
    for e, name in enumerate("abc"):
        for prompt in EVAL[name]:
            probs = router_probs_by_hand(model, prompt)[:, 1:]  # leave out the bos token
            picks = probs.mean(dim=1).argmax(dim=-1).tolist()
            share = (probs.argmax(dim=-1) == e).float().mean(dim=1).tolist()
            got = next(routed)
            assert (got.expert, got.prompt, got.picks) == (e, prompt, picks)
            assert got.token_share == pytest.approx(share, abs=1e-4)
            hits += sum(p == e for p in picks)
            total += len(picks)
            per_expert[e][0] += sum(p == e for p in picks)
            per_expert[e][1] += len(picks)
    assert report.accuracy() == pytest.approx(hits / total)
    for e, (h, n) in per_expert.items():
        assert report.accuracy(e) == pytest.approx(h / n)
    routers = [model.model.layers[i].mlp.gate.weight.detach().numpy() for i in range(2)]
    assert report.condition_numbers == pytest.approx([np.linalg.cond(r) for r in routers])
    data = report.to_dict()
    assert data["confusion"] == [
        [
            sum(1 for p in report.prompts if p.expert == e for k in p.picks if k == j)
            for j in range(3)
        ]
        for e in range(3)
    ]
    json.dumps(data)  # JSON-ready


def test_report_warns_about_router_prompts_and_neglected_experts(built: Path) -> None:
    groups = [HeldOut(PROMPTS["a"], False), HeldOut(EVAL["b"], True), HeldOut([], True)]
    report = routing_report(built, groups, names=["a", "b", "c"])
    warnings = report.warnings
    assert any("expert 0 (a) is scored on its own router prompts" in w for w in warnings)
    assert any("expert 2 (c) has no prompts" in w for w in warnings)
    assert report.accuracy(2) is None
    for e in (0, 1):
        accuracy = report.accuracy(e)
        assert accuracy is not None
        neglected = any(f"expert {e} ({'ab'[e]}) receives only" in w for w in warnings)
        assert neglected == (accuracy < 0.5)


def test_similar_prompts_warn_with_the_pair(moe_models: dict[str, Path], tmp_path: Path) -> None:
    words = " ".join(f"w{i}" for i in range(1, 21))
    config = moe_config(moe_models, gate_mode="cheap_embed")
    config["experts"][0]["positive_prompts"] = [words]
    config["experts"][1]["positive_prompts"] = [words + " w21"]
    del config["experts"][1]["negative_prompts"]
    result = build_moe(config, tmp_path / "m", report=True)
    assert all(c > 5 for c in result.condition_numbers)
    warning = next(w for w in result.warnings if "ill-conditioned" in w)
    assert "experts 0" in warning
    assert "and 1" in warning
    assert "prompts are too similar" in warning
    assert result.report is not None
    assert warning in result.report.warnings


def test_condition_number_and_closest_pair() -> None:
    gen = torch.Generator().manual_seed(0)
    r = torch.randn(4, 16, generator=gen)
    assert condition_number(r) == pytest.approx(float(np.linalg.cond(r.numpy())), rel=1e-5)
    r[2] = r[0] * 3  # parallel rows: singular
    assert condition_number(r) == math.inf
    i, j, cos = closest_pair(r)
    assert (i, j) == (0, 2)
    assert cos == pytest.approx(1.0)


def test_held_out_prompts_from_config_task_or_router_prompts(
    moe_models: dict[str, Path], tmp_path: Path
) -> None:
    items = [{"prompt": f"w{i} w{i + 1}", "answer": "1"} for i in range(5)]
    (tmp_path / "t.test.jsonl").write_text("".join(json.dumps(x) + "\n" for x in items))
    (tmp_path / "t.yaml").write_text("name: t\ntype: generate\nsplits:\n  test: t.test.jsonl\n")
    config = moe_config(moe_models)
    config["experts"][0]["eval_prompts"] = ["w9"]
    config["experts"][1]["eval_task"] = str(tmp_path / "t.yaml")
    got = held_out_prompts(load_moe_config(config), limit=3)
    assert got[0] == HeldOut(["w9"], True)
    assert got[1] == HeldOut(["w0 w1", "w1 w2", "w2 w3"], True)
    assert got[2] == HeldOut(PROMPTS["c"], False)
