"""Slices (frankenmerges), vocabulary alignment and LoRA inputs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tiny_models import WORDS, finetune_of, random_state

from mergelab import merge, merge_state_dict
from mergelab.errors import PlanError


def load_all(folder: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


def test_passthrough_slices_stack_and_renumber_layers(
    tiny_zoo: dict[str, Path], tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM

    recipe = {
        "merge_method": "passthrough",
        "slices": [
            {"sources": [{"model": str(tiny_zoo["a"]), "layer_range": [0, 2]}]},
            {"sources": [{"model": str(tiny_zoo["b"]), "layer_range": [1, 2]}]},
        ],
    }
    out = tmp_path / "frank"
    merge(recipe, out)
    merged, a, b = load_all(out), load_all(tiny_zoo["a"]), load_all(tiny_zoo["b"])
    for suffix in ("self_attn.q_proj.weight", "mlp.down_proj.weight", "input_layernorm.weight"):
        assert torch.equal(merged[f"model.layers.0.{suffix}"], a[f"model.layers.0.{suffix}"])
        assert torch.equal(merged[f"model.layers.1.{suffix}"], a[f"model.layers.1.{suffix}"])
        assert torch.equal(merged[f"model.layers.2.{suffix}"], b[f"model.layers.1.{suffix}"])
    assert torch.equal(merged["model.embed_tokens.weight"], a["model.embed_tokens.weight"])
    assert torch.equal(merged["lm_head.weight"], b["lm_head.weight"])
    assert json.loads((out / "config.json").read_text())["num_hidden_layers"] == 3
    model = AutoModelForCausalLM.from_pretrained(str(out))
    assert len(model.model.layers) == 3
    assert torch.isfinite(model(torch.tensor([[2, 5, 6]])).logits).all()


def test_slices_merge_sources_layer_by_layer(tiny_zoo: dict[str, Path]) -> None:
    recipe = {
        "merge_method": "linear",
        "slices": [
            {
                "sources": [
                    {"model": str(tiny_zoo["a"]), "layer_range": [1, 2]},
                    {"model": str(tiny_zoo["b"]), "layer_range": [0, 1]},
                ],
                "parameters": {"weight": 0.5},
            }
        ],
    }
    merged = merge_state_dict(recipe)
    a, b = load_all(tiny_zoo["a"]), load_all(tiny_zoo["b"])
    name = "model.layers.0.mlp.gate_proj.weight"
    expected = (a["model.layers.1.mlp.gate_proj.weight"] + b[name]) / 2
    torch.testing.assert_close(merged[name], expected, rtol=0, atol=1e-6)
    assert not any(".layers.1." in n for n in merged)


def test_union_tokenizer_reindexes_rows(make_model: Callable[..., Path], tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    extra = [*WORDS, "new1", "new2"]
    base_state = random_state(0)
    big = finetune_of(random_state(0, vocab=len(extra)), 5)
    a = make_model("a", base_state)
    b = make_model("b", big, words=extra)
    recipe = {
        "merge_method": "linear",
        "base_model": str(a),
        "models": [
            {"model": str(a), "parameters": {"weight": 1.0}},
            {"model": str(b), "parameters": {"weight": 1.0}},
        ],
        "tokenizer_source": "union",
    }
    out = tmp_path / "union"
    merge(recipe, out)
    merged = load_all(out)
    emb = merged["model.embed_tokens.weight"]
    assert emb.shape == (len(extra), 32)
    shared = len(WORDS)
    expected_shared = (
        base_state["model.embed_tokens.weight"] + big["model.embed_tokens.weight"][:shared]
    ) / 2
    torch.testing.assert_close(emb[:shared], expected_shared, rtol=0, atol=1e-6)
    # tokens only b knows are copied from b
    torch.testing.assert_close(
        emb[shared:], big["model.embed_tokens.weight"][shared:], rtol=0, atol=0
    )
    tok = AutoTokenizer.from_pretrained(str(out))
    assert tok.convert_tokens_to_ids("new2") == len(extra) - 1
    assert json.loads((out / "config.json").read_text())["vocab_size"] == len(extra)


def test_different_vocab_without_tokenizer_setting_is_an_error(
    make_model: Callable[..., Path],
) -> None:
    extra = [*WORDS, "new1"]
    a = make_model("a", random_state(0))
    b = make_model("b", random_state(1, vocab=len(extra)), words=extra)
    recipe = {
        "merge_method": "linear",
        "models": [
            {"model": str(a), "parameters": {"weight": 1.0}},
            {"model": str(b), "parameters": {"weight": 1.0}},
        ],
    }
    with pytest.raises(PlanError, match="tokenizer_source"):
        merge_state_dict(recipe)


def test_lora_adapter_input(tiny_zoo: dict[str, Path], tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_zoo["base"]))
    peft_model = get_peft_model(
        model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    )
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    peft_model.save_pretrained(str(tmp_path / "adapter"))
    merged_reference = peft_model.merge_and_unload().state_dict()
    recipe = {
        "merge_method": "linear",
        "models": [
            {"model": f"{tiny_zoo['base']}+{tmp_path / 'adapter'}", "parameters": {"weight": 1.0}}
        ],
    }
    merged = merge_state_dict(recipe)
    for name, value in merged.items():
        torch.testing.assert_close(value, merged_reference[name], rtol=1e-5, atol=1e-6)
