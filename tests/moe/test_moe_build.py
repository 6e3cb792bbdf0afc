"""The built MoE loads in transformers, matches a hand-built reference mixture, and its folder
holds the right config, tokenizer, recipe and card."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from moe_helpers import (
    LAYERS,
    NEGATIVE,
    PROMPTS,
    moe_config,
    read_state,
    reference_mixture,
    reference_rows,
)
from transformers import AutoModelForCausalLM, AutoTokenizer

from mergelab.cli import main
from mergelab.moe import build_moe, load_moe_config
from mergelab.moe.layout import OutputTensor

IDS = torch.tensor([[2, 5, 17, 30, 41, 8, 22, 59, 12], [2, 44, 45, 3, 9, 10, 11, 50, 51]])


def expected_routers(models: dict[str, Path], pool: str = "last") -> torch.Tensor:
    rows = [reference_rows(models["base"], PROMPTS[n], NEGATIVE.get(n, []), pool) for n in "abc"]
    return torch.stack(rows, dim=1)  # [L, E, H]


@pytest.fixture(scope="module")
def built(moe_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A top-2 hidden-mode MoE with a residual scale on expert c, in small shards."""
    config = moe_config(moe_models)
    config["experts"][2]["residual_scale"] = 0.5
    out = tmp_path_factory.mktemp("built") / "moe"
    build_moe(config, out, out_shard_size="40KB")
    return out


def test_forward_matches_reference_mixture(moe_models: dict[str, Path], built: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(str(built)).eval()
    assert type(model).__name__ == "MixtralForCausalLM"
    experts = [moe_models[n] for n in "abc"]
    reference = reference_mixture(
        moe_models["base"], experts, expected_routers(moe_models), k=2, residual_scales=[1, 1, 0.5]
    )
    with torch.no_grad():
        got = model(input_ids=IDS).logits
        want = reference(input_ids=IDS).logits
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    # the experts matter: a mixture with expert c unscaled differs clearly
    unscaled = reference_mixture(moe_models["base"], experts, expected_routers(moe_models), k=2)
    with torch.no_grad():
        assert (unscaled(input_ids=IDS).logits - got).abs().max() > 1e-3


@pytest.mark.parametrize("k", [1, 3])
def test_forward_matches_reference_for_other_top_k(
    moe_models: dict[str, Path], tmp_path: Path, k: int
) -> None:
    build_moe(moe_config(moe_models, gate_mode="hidden_avg", experts_per_token=k), tmp_path / "m")
    model = AutoModelForCausalLM.from_pretrained(str(tmp_path / "m")).eval()
    assert model.config.num_experts_per_tok == k
    routers = expected_routers(moe_models, pool="mean")
    reference = reference_mixture(moe_models["base"], [moe_models[n] for n in "abc"], routers, k)
    with torch.no_grad():
        torch.testing.assert_close(
            model(input_ids=IDS).logits, reference(input_ids=IDS).logits, atol=1e-4, rtol=1e-4
        )


def test_non_mlp_tensors_are_the_base_and_generation_runs(
    moe_models: dict[str, Path], built: Path
) -> None:
    out, base = read_state(built), read_state(moe_models["base"])
    dense = {k: v for k, v in base.items() if ".mlp." not in k}
    for name, tensor in dense.items():
        assert torch.equal(out[name], tensor), name
    assert len(list(built.glob("model-*.safetensors"))) > 1  # sharded, with an index
    assert (built / "model.safetensors.index.json").is_file()
    model = AutoModelForCausalLM.from_pretrained(str(built)).eval()
    tokens = model.generate(IDS[:1, :4], max_new_tokens=5, do_sample=False)
    assert tokens.shape == (1, 9)


def test_expert_tensors_stack_the_experts_mlps(moe_models: dict[str, Path], built: Path) -> None:
    out = read_state(built)
    experts = [read_state(moe_models[n]) for n in "abc"]
    for layer in range(LAYERS):
        gate_up = out[f"model.layers.{layer}.mlp.experts.gate_up_proj"]  # [E, 2I, H]
        down = out[f"model.layers.{layer}.mlp.experts.down_proj"]  # [E, H, I]
        assert gate_up.shape == (3, 128, 32)
        assert down.shape == (3, 32, 64)
        for e, (state, scale) in enumerate(zip(experts, (1.0, 1.0, 0.5), strict=True)):
            mlp = f"model.layers.{layer}.mlp"
            assert torch.equal(gate_up[e, :64], state[f"{mlp}.gate_proj.weight"])
            assert torch.equal(gate_up[e, 64:], state[f"{mlp}.up_proj.weight"])
            assert torch.equal(down[e], scale * state[f"{mlp}.down_proj.weight"])


def test_output_files(moe_models: dict[str, Path], built: Path) -> None:
    config = json.loads((built / "config.json").read_text())
    assert config["model_type"] == "mixtral"
    assert config["architectures"] == ["MixtralForCausalLM"]
    assert config["num_local_experts"] == 3
    assert config["num_experts_per_tok"] == 2
    assert config["num_hidden_layers"] == LAYERS
    assert config["bos_token_id"] == 2
    tokenizer = AutoTokenizer.from_pretrained(str(built))
    assert tokenizer("w1 w2", add_special_tokens=False)["input_ids"] == [5, 6]
    card = (built / "README.md").read_text()
    assert "gate_mode: hidden" in card
    assert str(moe_models["c"]) in card
    recipe = load_moe_config(built / "mergelab_moe.yml")
    assert recipe.experts[2].residual_scale == 0.5
    assert recipe.seed == 0
    assert recipe.dtype == "float32"


def test_dtype_is_applied(moe_models: dict[str, Path], tmp_path: Path) -> None:
    build_moe(moe_config(moe_models, dtype="bfloat16"), tmp_path / "m")
    state = read_state(tmp_path / "m")
    assert {t.dtype for t in state.values()} == {torch.bfloat16}
    assert json.loads((tmp_path / "m" / "config.json").read_text())["dtype"] == "bfloat16"
    model = AutoModelForCausalLM.from_pretrained(str(tmp_path / "m"))
    assert model.dtype == torch.bfloat16


def _per_expert_layout(config: Any) -> tuple[list[OutputTensor], set[str]]:
    """transformers 4's Mixtral names: block_sparse_moe, experts.<e>.w1 / w3 / w2."""
    from mergelab.moe.layout import expected_tensors

    fused, tied = expected_tensors(config)
    out = []
    for t in fused:
        if t.kind == "router":
            name = f"model.layers.{t.layer}.block_sparse_moe.gate.weight"
            out.append(OutputTensor(name, t.shape, "router", layer=t.layer))
        elif t.kind == "experts":
            e_count, rows, cols = t.shape
            parts = [("w1", "gate"), ("w3", "up")] if t.part == "gate_up" else [("w2", "down")]
            shape = (rows // 2, cols) if t.part == "gate_up" else (rows, cols)
            for e in range(e_count):
                for w, part in parts:
                    name = f"model.layers.{t.layer}.block_sparse_moe.experts.{e}.{w}.weight"
                    out.append(OutputTensor(name, shape, "experts", t.layer, part, e))  # type: ignore[arg-type]
        else:
            out.append(t)
    return out, tied


def test_per_expert_layout_loads_the_same_model(
    moe_models: dict[str, Path], built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The transformers-4 layout, written by the same planner, is converted by transformers 5
    on load into the very same model."""
    monkeypatch.setattr("mergelab.moe.plan.expected_tensors", _per_expert_layout)
    config = moe_config(moe_models)
    config["experts"][2]["residual_scale"] = 0.5
    build_moe(config, tmp_path / "legacy")
    names = read_state(tmp_path / "legacy")
    assert "model.layers.1.block_sparse_moe.experts.2.w2.weight" in names
    legacy = AutoModelForCausalLM.from_pretrained(str(tmp_path / "legacy")).eval()
    fused = AutoModelForCausalLM.from_pretrained(str(built)).eval()
    with torch.no_grad():
        torch.testing.assert_close(
            legacy(input_ids=IDS).logits, fused(input_ids=IDS).logits, atol=0, rtol=0
        )


def test_cli_builds_and_reports(
    moe_models: dict[str, Path],
    tmp_path: Path,
    write_yaml: Callable[[dict[str, Any]], Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = moe_config(moe_models)
    for expert, name in zip(config["experts"], "abc", strict=True):
        expert["eval_prompts"] = PROMPTS[name][:1]
    path = write_yaml(config)
    report = tmp_path / "reports" / "routing.json"
    main(["moe", str(path), str(tmp_path / "out"), "--report", str(report), "-q"])
    printed = capsys.readouterr().out
    assert "built a 3-expert MoE" in printed
    assert "routing accuracy" in printed
    data = json.loads(report.read_text())
    assert len(data["experts"]) == 3
    assert len(data["condition_numbers"]) == LAYERS
    assert (tmp_path / "out" / "config.json").is_file()


def test_cli_dry_run_builds_nothing(
    moe_models: dict[str, Path],
    tmp_path: Path,
    write_yaml: Callable[[dict[str, Any]], Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = write_yaml(moe_config(moe_models))
    main(["moe", str(path), str(tmp_path / "out"), "--dry-run"])
    printed = capsys.readouterr().out
    assert "2 layers, 3 experts, 2 per token" in printed
    assert not (tmp_path / "out").exists()
