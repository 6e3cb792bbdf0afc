"""Low-rank vectors: truncated SVD against numpy, and the PEFT LoRA adapter round trip."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from mergelab.checkpoint import Checkpoint
from mergelab.vectors import TaskVector, Term, apply_state_dict, extract_lora, extract_vector
from mergelab.vectors import make_recipe as recipe
from mergelab.vectors.lowrank import factors, pack, unpack

State = Callable[[Path], dict[str, torch.Tensor]]
RANK = 4


def _best_rank_r(matrix: np.ndarray, r: int) -> np.ndarray:
    u, s, vh = np.linalg.svd(matrix.astype(np.float64), full_matrices=False)
    return (u[:, :r] * s[:r]) @ vh[:r]


def test_factors_give_the_best_rank_r_approximation() -> None:
    delta = torch.randn(48, 20, generator=torch.Generator().manual_seed(0))
    a, b = factors(delta, 5)
    assert a.shape == (5, 20)
    assert b.shape == (48, 5)
    np.testing.assert_allclose((b @ a).numpy(), _best_rank_r(delta.numpy(), 5), atol=1e-5)
    # the split is symmetric: A A^T = B^T B = diag(S_r)
    s = np.linalg.svd(delta.numpy().astype(np.float64), compute_uv=False)[:5]
    np.testing.assert_allclose((a @ a.T).numpy(), np.diag(s), atol=1e-4)
    np.testing.assert_allclose((b.T @ b).numpy(), np.diag(s), atol=1e-4)
    assert [t.tolist() for t in unpack(pack(a, b), 20)] == [a.tolist(), b.tolist()]


@pytest.fixture(scope="module")
def lowrank(tiny: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lowrank") / "a-r4.tv"
    extract_vector(tiny["a"], tiny["base"], path, recipe=recipe(rank=RANK))
    return path


def test_lowrank_artifact_reads_back_the_truncated_svd(
    tiny: dict[str, Path], lowrank: Path, state: State
) -> None:
    base, ft = state(tiny["base"]), state(tiny["a"])
    with TaskVector.open(lowrank) as tv:
        for name, b in base.items():
            delta = (ft[name] - b).numpy()
            got = tv.read(name).numpy()
            if delta.ndim == 2:
                assert tv.meta.tensors[name].kind == "lowrank"
                np.testing.assert_allclose(got, _best_rank_r(delta, RANK), atol=1e-5)
            else:  # 1-D tensors are stored densely
                assert tv.meta.tensors[name].kind == "dense"
                np.testing.assert_array_equal(got, delta)


def test_full_rank_reproduces_the_delta(
    tiny: dict[str, Path], tmp_path: Path, state: State
) -> None:
    tv = tmp_path / "full.tv"
    extract_vector(tiny["a"], tiny["base"], tv, recipe=recipe(rank=16))  # min side of k_proj
    base, ft = state(tiny["base"]), state(tiny["a"])
    with TaskVector.open(tv) as vector:
        delta = (
            ft["model.layers.0.self_attn.k_proj.weight"]
            - base["model.layers.0.self_attn.k_proj.weight"]
        )
        got = vector.read("model.layers.0.self_attn.k_proj.weight")
        torch.testing.assert_close(got, delta, rtol=0, atol=1e-5)


def _peft_merged(base: Path, adapter: Path) -> dict[str, torch.Tensor]:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base)
    peft_model = PeftModel.from_pretrained(model, str(adapter))
    return {k: v.detach().clone() for k, v in peft_model.merge_and_unload().state_dict().items()}


def test_peft_loads_the_adapter_and_matches_the_dense_low_rank_model(
    tiny: dict[str, Path], lowrank: Path
) -> None:
    adapter = lowrank / "peft"
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["r"] == RANK
    assert config["lora_alpha"] == RANK
    assert config["peft_type"] == "LORA"
    assert "model.embed_tokens" in config["target_modules"]
    assert "model.norm" in config["modules_to_save"]
    merged = _peft_merged(tiny["base"], adapter)
    dense = apply_state_dict(tiny["base"], [Term(str(lowrank))])
    assert merged.keys() == dense.keys()
    for name, tensor in dense.items():
        torch.testing.assert_close(merged[name], tensor, rtol=0, atol=2e-6, msg=name)


def test_peft_forward_pass_equals_the_dense_model(tiny: dict[str, Path], lowrank: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    ids = torch.tensor([[2, 5, 9, 17, 30, 41]])
    peft_model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny["base"]), str(lowrank / "peft")
    )
    dense_model = AutoModelForCausalLM.from_pretrained(tiny["base"])
    dense_model.load_state_dict(apply_state_dict(tiny["base"], [Term(str(lowrank))]))
    with torch.no_grad():
        torch.testing.assert_close(
            peft_model(input_ids=ids).logits, dense_model(input_ids=ids).logits, rtol=0, atol=1e-4
        )


def test_extract_lora_writes_the_same_adapter(
    tiny: dict[str, Path], lowrank: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    result = extract_lora(tiny["a"], tiny["base"], tmp_path / "lora", rank=RANK)
    assert sorted(p.name for p in result.out.iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    ours = load_file(result.out / "adapter_model.safetensors")
    inside = load_file(lowrank / "peft" / "adapter_model.safetensors")
    assert ours.keys() == inside.keys()
    assert all(torch.equal(ours[k], inside[k]) for k in ours)
    emb_a = ours["base_model.model.model.embed_tokens.lora_embedding_A"]
    assert emb_a.shape == (RANK, 64)  # (r, vocab)


def test_mergelab_lora_reader_agrees(tiny: dict[str, Path], lowrank: Path) -> None:
    """``BASE+ADAPTER`` references (mergelab.lora) rebuild the same weights."""
    dense = apply_state_dict(tiny["base"], [Term(str(lowrank))])
    with Checkpoint.open(f"{tiny['base']}+{lowrank / 'peft'}") as ckpt:
        for name, tensor in dense.items():
            torch.testing.assert_close(ckpt.read(name), tensor, rtol=0, atol=2e-6, msg=name)
