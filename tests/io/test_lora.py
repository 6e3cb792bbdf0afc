"""LoRA adapters: ``base+adapter`` reads equal PEFT's merge_and_unload, plus hand formulas."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import peft
import pytest
import torch
import transformers
from safetensors.torch import save_file

from mergelab.checkpoint import Checkpoint
from mergelab.errors import CheckpointError
from mergelab.lora import load_lora

# PEFT and transformers chatter while building the reference adapters; not our concern here.
pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore:Setting `save_embedding_layers`:UserWarning"),
]


def tiny_llama() -> Any:
    config = transformers.LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=64,
    )
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(config)


PEFT_SETUPS: dict[str, dict[str, Any]] = {
    "plain": {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]},
    "rslora_patterns": {
        "r": 4,
        "lora_alpha": 16,
        "use_rslora": True,
        "target_modules": ["q_proj", "k_proj", "down_proj"],
        "rank_pattern": {"k_proj": 2},
        "alpha_pattern": {"layers.1.self_attn.q_proj": 3},
    },
    "embedding_and_saved_module": {
        "r": 2,
        "lora_alpha": 4,
        "target_modules": ["embed_tokens", "o_proj"],
        "modules_to_save": ["lm_head"],
    },
}


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("base")
    tiny_llama().save_pretrained(folder)
    return folder


def make_adapter(base: Path, folder: Path, setup: dict[str, Any], *, safe: bool = True) -> Any:
    """Save a PEFT LoRA with random non-zero B (and modules_to_save copies) into ``folder``;
    return PEFT's merged state dict."""
    model = transformers.LlamaForCausalLM.from_pretrained(base)
    peft_model = peft.get_peft_model(model, peft.LoraConfig(**setup))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name or "lora_embedding_B" in name or "modules_to_save" in name:
                param.copy_(torch.randn(param.shape, generator=g))
    peft_model.save_pretrained(str(folder), safe_serialization=safe)
    return {k: v.detach().clone() for k, v in peft_model.merge_and_unload().state_dict().items()}


@pytest.mark.parametrize("setup", sorted(PEFT_SETUPS))
def test_matches_peft_merge_and_unload(base_dir: Path, tmp_path: Path, setup: str) -> None:
    merged = make_adapter(base_dir, tmp_path / "adapter", PEFT_SETUPS[setup])
    with Checkpoint.open(f"{base_dir}+{tmp_path / 'adapter'}") as ckpt:
        assert ckpt.path == base_dir.resolve()
        changed = 0
        with Checkpoint.open(base_dir) as plain:
            for name, expected in merged.items():
                got = ckpt.read(name)
                assert got.dtype == expected.dtype
                torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6, msg=name)
                changed += not torch.equal(got, plain.read(name))
    assert changed > 0


def test_adapter_bin_file(base_dir: Path, tmp_path: Path) -> None:
    merged = make_adapter(base_dir, tmp_path / "adapter", PEFT_SETUPS["plain"], safe=False)
    assert (tmp_path / "adapter" / "adapter_model.bin").is_file()
    name = "model.layers.0.self_attn.q_proj.weight"
    with Checkpoint.open(f"{base_dir}+{tmp_path / 'adapter'}") as ckpt:
        torch.testing.assert_close(ckpt.read(name), merged[name], rtol=1e-6, atol=1e-6)


# ---- hand-built adapters: the formula itself -------------------------------------------------

A = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, -1.0]])  # (r=2, in=3)
B = torch.tensor([[1.0, 1.0], [0.5, 0.0], [0.0, -2.0], [1.0, 3.0]])  # (out=4, r=2)
W = torch.arange(12.0).reshape(4, 3)  # base weight (out=4, in=3)


def hand_adapter(folder: Path, config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> str:
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", **config}))
    save_file(tensors, folder / "adapter_model.safetensors")
    return str(folder)


def hand_base(folder: Path, weight: torch.Tensor) -> str:
    folder.mkdir()
    save_file(
        {"layer.proj.weight": weight, "layer.norm.weight": torch.ones(3)},
        folder / "model.safetensors",
    )
    return str(folder)


FACTORS = {
    "base_model.model.layer.proj.lora_A.weight": A,
    "base_model.model.layer.proj.lora_B.weight": B,
}


@pytest.mark.parametrize(
    ("config", "scale"),
    [
        ({"r": 2, "lora_alpha": 6}, 3.0),
        ({"r": 2, "lora_alpha": 6, "use_rslora": True}, 6 / math.sqrt(2)),
        ({"r": 2, "lora_alpha": 6, "alpha_pattern": {"proj": 1}}, 0.5),
    ],
)
def test_delta_formula(tmp_path: Path, config: dict[str, Any], scale: float) -> None:
    adapter = hand_adapter(tmp_path / "lora", config, FACTORS)
    expected_delta = [
        [sum(B[i, k] * A[k, j] for k in range(2)) * scale for j in range(3)] for i in range(4)
    ]
    delta = load_lora(adapter).delta("layer.proj.weight")
    assert delta is not None
    torch.testing.assert_close(delta, torch.tensor(expected_delta))
    assert load_lora(adapter).delta("layer.norm.weight") is None
    base = hand_base(tmp_path / "base", W)
    with Checkpoint.open(f"{base}+{adapter}") as ckpt:
        torch.testing.assert_close(ckpt.read("layer.proj.weight"), W + torch.tensor(expected_delta))
        assert torch.equal(ckpt.read("layer.norm.weight"), torch.ones(3))


def test_fan_in_fan_out_transposes(tmp_path: Path) -> None:
    adapter = hand_adapter(
        tmp_path / "lora", {"r": 2, "lora_alpha": 2, "fan_in_fan_out": True}, FACTORS
    )
    base = hand_base(tmp_path / "base", W.T.contiguous())  # Conv1D layout (in, out)
    with Checkpoint.open(f"{base}+{adapter}") as ckpt:
        torch.testing.assert_close(ckpt.read("layer.proj.weight"), (W + B @ A).T)


def test_bf16_base_keeps_its_dtype(tmp_path: Path) -> None:
    adapter = hand_adapter(tmp_path / "lora", {"r": 2, "lora_alpha": 2}, FACTORS)
    base = hand_base(tmp_path / "base", W.bfloat16())
    with Checkpoint.open(f"{base}+{adapter}") as ckpt:
        got = ckpt.read("layer.proj.weight")
    assert got.dtype == torch.bfloat16
    assert torch.equal(got, (W.bfloat16().float() + B @ A).bfloat16())


# ---- adapters that do not fit ----------------------------------------------------------------


def test_key_without_base_tensor(tmp_path: Path) -> None:
    tensors = {k.replace("layer.proj", "layer.gone"): v for k, v in FACTORS.items()}
    adapter = hand_adapter(tmp_path / "lora", {"r": 2, "lora_alpha": 2}, tensors)
    base = hand_base(tmp_path / "base", W)
    with pytest.raises(CheckpointError) as info:
        Checkpoint.open(f"{base}+{adapter}")
    assert "'base_model.model.layer.gone.lora_A.weight' targets 'layer.gone.weight'" in str(
        info.value
    )


def test_shape_mismatch(tmp_path: Path) -> None:
    adapter = hand_adapter(tmp_path / "lora", {"r": 2, "lora_alpha": 2}, FACTORS)
    base = hand_base(tmp_path / "base", torch.zeros(4, 5))
    with pytest.raises(CheckpointError, match=r"delta of shape \[4, 3\].*shape \[4, 5\]"):
        Checkpoint.open(f"{base}+{adapter}")


@pytest.mark.parametrize(
    ("config", "tensors", "message"),
    [
        ({"r": 2, "lora_alpha": 2, "use_dora": True}, FACTORS, "DoRA"),
        ({"r": 2, "lora_alpha": 2, "peft_type": "IA3"}, FACTORS, "IA3 adapter"),
        ({"r": 0, "lora_alpha": 2}, FACTORS, "r is 0"),
        ({"r": 2, "lora_alpha": 2, "alpha_pattern": {"(": 1}}, FACTORS, "alpha_pattern"),
        (
            {"r": 2, "lora_alpha": 2},
            {"base_model.model.layer.proj.lora_A.weight": A},
            "has no lora_B",
        ),
        (
            {"r": 2, "lora_alpha": 2},
            {**FACTORS, "base_model.model.layer.proj.lora_magnitude_vector": torch.ones(4)},
            "not a plain LoRA factor",
        ),
    ],
)
def test_unusable_adapters(
    tmp_path: Path, config: dict[str, Any], tensors: dict[str, torch.Tensor], message: str
) -> None:
    adapter = hand_adapter(tmp_path / "lora", config, tensors)
    with pytest.raises(CheckpointError, match=message) as info:
        load_lora(adapter)
    assert str(tmp_path / "lora") in str(info.value)


def test_folder_without_adapter_config(tmp_path: Path) -> None:
    (tmp_path / "lora").mkdir()
    with pytest.raises(CheckpointError, match=r"no adapter_config\.json"):
        load_lora(tmp_path / "lora")
