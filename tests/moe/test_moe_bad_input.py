"""Bad MoE input: one clear error naming the problem, no output folder, every problem at once."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from moe_helpers import moe_config, save_llama
from tiny_models import WORDS, save_tokenizer
from transformers import GPT2Config, GPT2LMHeadModel

from mergelab.cli import main
from mergelab.errors import ConfigError, PlanError, TaskError
from mergelab.moe import build_moe, plan_moe

ACK = "--i-understand-this-is-not-useful-without-training"


def refused(config: dict[str, Any], error: type[Exception], *needles: str, **kw: Any) -> str:
    with pytest.raises(error) as info:
        plan_moe(config, **kw).close()
    text = str(info.value)
    assert "\n" not in text
    for needle in needles:
        assert needle in text, text
    return text


def with_expert(config: dict[str, Any], index: int, path: Path) -> dict[str, Any]:
    config["experts"][index]["source_model"] = str(path)
    return config


def test_expert_with_other_shapes(moe_models: dict[str, Path], tmp_path: Path) -> None:
    odd = save_llama(tmp_path / "wide", intermediate_size=48)
    config = with_expert(moe_config(moe_models), 1, odd)
    refused(config, PlanError, str(odd), "[48, 32], not [64, 32]", "share the base's shapes")


def test_expert_with_other_layer_count(moe_models: dict[str, Path], tmp_path: Path) -> None:
    odd = save_llama(tmp_path / "deep", num_hidden_layers=3)
    config = with_expert(moe_config(moe_models), 0, odd)
    refused(config, PlanError, "has 3 layers but the base has 2")


def test_expert_with_other_activation(moe_models: dict[str, Path], tmp_path: Path) -> None:
    odd = save_llama(tmp_path / "gelu", hidden_act="gelu")
    config = with_expert(moe_config(moe_models), 2, odd)
    refused(config, PlanError, "uses activation gelu but the base uses silu")


def save_gpt2(folder: Path) -> Path:
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=len(WORDS), n_embd=32, n_layer=2, n_head=4, n_positions=64)
    GPT2LMHeadModel(cfg).save_pretrained(str(folder))
    save_tokenizer(folder, WORDS)
    return folder


def test_base_of_unsupported_family(moe_models: dict[str, Path], tmp_path: Path) -> None:
    gpt2 = save_gpt2(tmp_path / "gpt2")
    config = moe_config(moe_models, base_model=str(gpt2))
    refused(config, PlanError, "is a 'gpt2' model", "support these families: llama, mistral")


def test_expert_of_unsupported_family(moe_models: dict[str, Path], tmp_path: Path) -> None:
    gpt2 = save_gpt2(tmp_path / "gpt2")
    config = with_expert(moe_config(moe_models), 0, gpt2)
    refused(config, PlanError, f"expert {gpt2} is a 'gpt2' model", "llama, mistral")


def test_base_with_attention_bias(moe_models: dict[str, Path], tmp_path: Path) -> None:
    biased = save_llama(tmp_path / "biased", attention_bias=True)
    config = moe_config(moe_models, base_model=str(biased))
    refused(config, PlanError, "attention_bias: true")


def test_expert_without_prompts_in_a_prompt_mode(moe_models: dict[str, Path]) -> None:
    for mode in ("hidden", "hidden_avg", "hidden_fit", "cheap_embed"):
        config = moe_config(moe_models, gate_mode=mode)
        del config["experts"][1]["positive_prompts"]
        refused(config, ConfigError, "experts[1]", "has no positive_prompts", mode)
    config = moe_config(moe_models, gate_mode="random")
    del config["experts"][1]["positive_prompts"]
    plan_moe(config).close()  # random routers need no prompts


def test_more_experts_per_token_than_experts(moe_models: dict[str, Path]) -> None:
    config = moe_config(moe_models, experts_per_token=4)
    refused(config, ConfigError, "experts_per_token is 4 but there are 3 experts", "1 to 3")


def test_identical_prompts_refused_unless_acknowledged(
    moe_models: dict[str, Path], tmp_path: Path
) -> None:
    config = moe_config(moe_models)
    config["experts"][2]["positive_prompts"] = list(
        reversed(config["experts"][0]["positive_prompts"])
    )
    refused(config, PlanError, "experts[0]", "experts[2]", "identical prompts", ACK)
    build_moe(config, tmp_path / "ok", needs_training=True)
    assert (tmp_path / "ok" / "config.json").is_file()


def test_same_expert_twice_refused_unless_acknowledged(
    moe_models: dict[str, Path], tmp_path: Path
) -> None:
    config = with_expert(moe_config(moe_models), 1, moe_models["a"])
    refused(config, PlanError, "experts[0] and experts[1] are the same model", ACK)
    plan_moe(config, needs_training=True).close()


def test_identical_copies_refused(moe_models: dict[str, Path], tmp_path: Path) -> None:
    copy = tmp_path / "copy-of-a"
    shutil.copytree(moe_models["a"], copy)
    config = with_expert(moe_config(moe_models), 1, copy)
    refused(config, PlanError, "hold identical MLP weights", ACK)
    plan_moe(config, needs_training=True).close()


def test_every_problem_reported_at_once(moe_models: dict[str, Path], tmp_path: Path) -> None:
    wide = save_llama(tmp_path / "wide", intermediate_size=48)
    config = with_expert(moe_config(moe_models), 1, wide)
    config["experts"][2]["positive_prompts"] = config["experts"][0]["positive_prompts"]
    refused(config, PlanError, "[48, 32], not [64, 32]", "identical prompts")


def test_unknown_key_names_the_nearest(moe_models: dict[str, Path]) -> None:
    config = moe_config(moe_models)
    config["experts"][0]["positve_prompts"] = config["experts"][0].pop("positive_prompts")
    config["gate_mod"] = "hidden"
    text = refused(config, ConfigError, "did you mean 'positive_prompts'?")
    assert "did you mean 'gate_mode'?" in text


def test_bad_values(moe_models: dict[str, Path]) -> None:
    config = moe_config(moe_models, gate_mode="hiden", architecture="deepseek")
    refused(config, ConfigError, "gate_mode", "'uniform_random'")
    config = moe_config(moe_models, architecture="qwen", shared_experts=[{"source_model": "x"}])
    config["experts"][0]["noise_scale"] = -1
    config["experts"][1]["positive_prompts"] = ["w1", "  "]
    refused(
        config,
        ConfigError,
        "architecture 'qwen' is not supported",
        "shared_experts are not supported",
        "noise_scale is -1.0",
        "empty prompt",
    )


def test_unknown_eval_task_fails_before_building(
    moe_models: dict[str, Path], tmp_path: Path
) -> None:
    config = moe_config(moe_models)
    config["experts"][0]["eval_task"] = "no-such-task"
    with pytest.raises(TaskError, match="unknown task 'no-such-task'"):
        build_moe(config, tmp_path / "out", report=True)
    assert not (tmp_path / "out").exists()


def test_failed_build_leaves_no_output(moe_models: dict[str, Path], tmp_path: Path) -> None:
    """A NaN in an expert stops the stream; nothing that looks like a model is left."""
    from tiny_models import random_state, save_model

    state = random_state(0)
    state["model.layers.1.mlp.down_proj.weight"][0, 0] = float("nan")
    broken = save_model(tmp_path / "broken", state)
    config = with_expert(moe_config(moe_models, gate_mode="random"), 2, broken)
    with pytest.raises(Exception, match="NaN"):
        build_moe(config, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_cli_prints_one_line_and_exits_non_zero(
    moe_models: dict[str, Path],
    tmp_path: Path,
    write_yaml: Callable[[dict[str, Any]], Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = write_yaml(with_expert(moe_config(moe_models), 1, moe_models["a"]))
    with pytest.raises(SystemExit) as info:
        main(["moe", str(path), str(tmp_path / "out")])
    assert info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:")
    assert len(err.splitlines()) == 1
    assert ACK in err
    assert not (tmp_path / "out").exists()
    bad = write_yaml({"base_model": "x", "experts": [{"source_model": "y"}], "gate_mode": 3})
    with pytest.raises(SystemExit) as info:
        main(["moe", str(bad), str(tmp_path / "out")])
    assert info.value.code == 2
    assert json.dumps("gate_mode")[1:-1] in capsys.readouterr().err


def test_base_without_tokenizer_in_a_prompt_mode(
    moe_models: dict[str, Path], tmp_path: Path
) -> None:
    base = tmp_path / "bare-base"
    shutil.copytree(moe_models["base"], base)
    for file in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (base / file).unlink(missing_ok=True)
    config = moe_config(moe_models, base_model=str(base))
    with pytest.raises(
        PlanError, match=r"cannot load the tokenizer of base model .* add the tokenizer"
    ):
        build_moe(config, tmp_path / "out")
    assert not (tmp_path / "out").exists()
