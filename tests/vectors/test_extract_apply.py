"""Extraction and application against hand formulas (numpy / float64 references)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mergelab.checkpoint import Checkpoint
from mergelab.vectors import (
    TaskVector,
    Term,
    apply_state_dict,
    apply_vectors,
    extract_vector,
    fingerprint,
    make_recipe,
)
from mergelab.vectors.format import META_FILE

State = Callable[[Path], dict[str, torch.Tensor]]


@pytest.fixture(scope="module")
def dense(tiny: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Uncompressed vectors of a, b, c (float32 values) and of ft16 (bfloat16 models)."""
    root = tmp_path_factory.mktemp("dense")
    out = {n: root / f"{n}.tv" for n in ("a", "b", "c")}
    for name, path in out.items():
        extract_vector(tiny[name], tiny["base"], path)
    out["ft16"] = root / "ft16.tv"
    extract_vector(tiny["ft16"], tiny["base16"], out["ft16"])
    return out


def test_stored_delta_is_finetune_minus_base(
    tiny: dict[str, Path], dense: dict[str, Path], state: State
) -> None:
    base, ft = state(tiny["base"]), state(tiny["a"])
    with TaskVector.open(dense["a"]) as tv:
        assert set(tv.tensors) == set(base)
        for name in base:
            want = ft[name].numpy() - base[name].numpy()  # float32, as numpy rounds it
            np.testing.assert_array_equal(tv.read(name).numpy(), want)


def test_extract_then_apply_reproduces_bfloat16_finetune_bit_for_bit(
    tiny: dict[str, Path], dense: dict[str, Path], state: State
) -> None:
    out = apply_state_dict(tiny["base16"], [Term(str(dense["ft16"]))])
    ft = state(tiny["ft16"])
    for name, tensor in ft.items():
        assert out[name].dtype == torch.bfloat16
        assert torch.equal(out[name], tensor), name


def test_extract_then_apply_reproduces_float32_finetune_with_float64_values(
    tiny: dict[str, Path], tmp_path: Path, state: State
) -> None:
    tv = tmp_path / "a64.tv"
    extract_vector(tiny["a"], tiny["base"], tv, recipe=make_recipe(dtype="float64"))
    out = apply_vectors(tiny["base"], [Term(str(tv))], tmp_path / "out")
    got, ft = state(out.out), state(tiny["a"])
    assert got.keys() == ft.keys()
    for name, tensor in ft.items():
        assert torch.equal(got[name], tensor), name


def test_float32_values_reproduce_a_float32_finetune_within_one_rounding(
    tiny: dict[str, Path], dense: dict[str, Path], state: State
) -> None:
    # delta is rounded once to float32 (<= ulp(delta)/2) and the sum once more (<= ulp(out)/2)
    out = apply_state_dict(tiny["base"], [Term(str(dense["a"]))])
    base, ft = state(tiny["base"]), state(tiny["a"])
    for name, tensor in ft.items():
        f, b = tensor.double(), base[name].double()
        bound = 2.0**-24 * ((f - b).abs() + f.abs()) * 1.01
        assert bool(((out[name].double() - f).abs() <= bound).all()), name


def test_negate_then_add_is_the_identity(tiny: dict[str, Path], dense: dict[str, Path]) -> None:
    terms = [Term(str(dense["a"]), 1.0), Term(str(dense["a"]), -1.0)]
    out = apply_state_dict(tiny["base"], terms)
    with Checkpoint.open(tiny["base"]) as base:
        for name in base.tensors:
            assert torch.equal(out[name], base.read(name)), name


@settings(max_examples=15, deadline=None)
@given(scale=st.floats(min_value=-8.0, max_value=8.0, allow_nan=False))
def test_adding_and_subtracting_any_scale_gives_the_base_back(
    tiny: dict[str, Path], dense: dict[str, Path], scale: float
) -> None:
    terms = [Term(str(dense["b"]), scale), Term(str(dense["b"]), -scale)]
    out = apply_state_dict(tiny["base"], terms)
    with Checkpoint.open(tiny["base"]) as base:
        assert all(torch.equal(out[n], base.read(n)) for n in base.tensors)


def test_subtracting_the_vector_from_its_finetune_gives_the_base(
    tiny: dict[str, Path], dense: dict[str, Path], state: State
) -> None:
    # base + (a - base) - tau_a: the model term and the artifact cancel exactly
    out = apply_state_dict(tiny["base"], [Term(str(tiny["a"]), 1.0), Term(str(dense["a"]), -1.0)])
    base = state(tiny["base"])
    assert all(torch.equal(out[n], base[n]) for n in base)


def test_weighted_sum_matches_the_formula(
    tiny: dict[str, Path], dense: dict[str, Path], state: State
) -> None:
    scales = {"a": 1.0, "b": -0.7, "c": 0.25}
    out = apply_state_dict(tiny["base"], [Term(str(dense[n]), s) for n, s in scales.items()])
    base = {k: v.double().numpy() for k, v in state(tiny["base"]).items()}
    fts = {n: {k: v.double().numpy() for k, v in state(tiny[n]).items()} for n in scales}
    for name, b in base.items():
        want = b + sum(s * (fts[n][name] - b) for n, s in scales.items())
        np.testing.assert_allclose(out[name].double().numpy(), want, rtol=0, atol=2e-6)


def test_analogy_equals_the_hand_computation(
    tiny: dict[str, Path], dense: dict[str, Path], tmp_path: Path, state: State
) -> None:
    # A : B :: C : D with A, C artifacts and B a model: D = base + s (tau_C + tau_B - tau_A)
    from mergelab.vectors import analogy

    s = 0.8
    out = analogy(
        tiny["base"], str(dense["a"]), str(tiny["b"]), str(dense["c"]), tmp_path / "d", scale=s
    )
    got = state(out.out)
    base = {k: v.double().numpy() for k, v in state(tiny["base"]).items()}
    a, b, c = ({k: v.double().numpy() for k, v in state(tiny[n]).items()} for n in "abc")
    for name, x in base.items():
        want = x + s * ((c[name] - x) + (b[name] - x) - (a[name] - x))
        np.testing.assert_allclose(got[name].double().numpy(), want, rtol=0, atol=2e-6)
    record = json.loads((out.out / "mergelab_vectors.json").read_text())
    assert [(t["source"], t["scale"]) for t in record["terms"]] == [
        (str(dense["c"]), s),
        (str(tiny["b"]), s),
        (str(dense["a"]), -s),
    ]


def test_applied_model_loads_in_transformers_with_the_base_config(
    tiny: dict[str, Path], dense: dict[str, Path], tmp_path: Path, state: State
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = apply_vectors(tiny["base"], [Term(str(dense["a"]), 0.5)], tmp_path / "half").out
    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer("w1 w2")["input_ids"][-1] == tokenizer.convert_tokens_to_ids("w2")
    base, ft = state(tiny["base"]), state(tiny["a"])
    for name, param in model.state_dict().items():
        want = base[name].double() + 0.5 * (ft[name].double() - base[name].double())
        torch.testing.assert_close(param.double(), want, rtol=0, atol=2e-6)
    assert json.loads((out / "config.json").read_text()) == json.loads(
        (tiny["base"] / "config.json").read_text()
    )


def test_metadata_records_fingerprints_source_and_recipe(
    tiny: dict[str, Path], dense: dict[str, Path]
) -> None:
    meta = json.loads((dense["a"] / META_FILE).read_text())
    with Checkpoint.open(tiny["base"]) as base, Checkpoint.open(tiny["a"]) as ft:
        assert meta["base"] == {"ref": str(tiny["base"]), "fingerprint": fingerprint(base)}
        assert meta["source"] == {"ref": str(tiny["a"]), "fingerprint": fingerprint(ft)}
    assert meta["format"] == "mergelab-task-vector"
    assert meta["version"] == 1
    assert meta["architecture"] == "LlamaForCausalLM"
    assert meta["recipe"]["dtype"] == "float32"
    assert meta["recipe"]["density"] is None
    assert meta["recipe"]["rank"] is None
    assert {t["kind"] for t in meta["tensors"].values()} == {"dense"}


def _reference_fingerprint(folder: Path) -> str:
    """The documented fingerprint for tensors of at most 64 KiB: blake2b-128 of the v1 tag,
    then per tensor in name order JSON [name, dtype code, shape], NUL, the raw bytes."""
    from safetensors import safe_open

    tensors: dict[str, tuple[str, list[int], bytes]] = {}
    for shard in sorted(folder.glob("*.safetensors")):
        header_len = int.from_bytes(shard.read_bytes()[:8], "little")
        header = json.loads(shard.read_bytes()[8 : 8 + header_len])
        data = shard.read_bytes()[8 + header_len :]
        with safe_open(shard, "pt") as f:
            for name in f.keys():  # noqa: SIM118  (safe_open has no __iter__)
                entry = header[name]
                begin, end = entry["data_offsets"]
                tensors[name] = (entry["dtype"], entry["shape"], data[begin:end])
    digest = hashlib.blake2b(b"mergelab-fingerprint-v1\0", digest_size=16)
    for name in sorted(tensors):
        code, shape, raw = tensors[name]
        assert len(raw) <= 16 * 4096
        digest.update(json.dumps([name, code, shape]).encode() + b"\0" + raw)
    return "blake2b-128:" + digest.hexdigest()


def test_fingerprint_follows_the_documented_recipe(tiny: dict[str, Path]) -> None:
    for name in ("base", "base16", "deep"):
        with Checkpoint.open(tiny[name]) as ckpt:
            assert fingerprint(ckpt) == _reference_fingerprint(tiny[name])


def test_fingerprint_ignores_sharding_and_sees_one_changed_value(
    tiny: dict[str, Path], tmp_path: Path, state: State
) -> None:
    from tiny_models import save_model

    weights = state(tiny["base"])
    resharded = save_model(tmp_path / "one-shard", weights, shard="10MB")
    assert len(list(resharded.glob("*.safetensors"))) == 1
    nudged = dict(weights)
    nudged["model.norm.weight"] = weights["model.norm.weight"].clone()
    nudged["model.norm.weight"][3] += 1e-3
    changed = save_model(tmp_path / "nudged", nudged)
    prints = {}
    for key, folder in (("base", tiny["base"]), ("one", resharded), ("nudged", changed)):
        with Checkpoint.open(folder) as ckpt:
            prints[key] = fingerprint(ckpt)
    assert prints["base"] == prints["one"]
    assert prints["base"] != prints["nudged"]


def test_fingerprint_samples_blocks_of_a_large_tensor() -> None:
    from mergelab.checkpoint import TensorInfo
    from mergelab.vectors.fingerprint import BLOCK_BYTES, BLOCKS

    class Source:
        def __init__(self, tensor: torch.Tensor) -> None:
            self.t = tensor
            self.tensors = {"w": TensorInfo("w", tuple(tensor.shape), tensor.dtype)}

        def read(self, name: str) -> torch.Tensor:
            return self.t

    big = torch.arange(200_000, dtype=torch.float32)  # 800 kB: 16 sampled blocks of 4 KiB
    raw = big.numpy().tobytes()
    n = len(raw)
    starts = [i * (n - BLOCK_BYTES) // (BLOCKS - 1) for i in range(BLOCKS)]
    digest = hashlib.blake2b(b"mergelab-fingerprint-v1\0", digest_size=16)
    digest.update(json.dumps(["w", "F32", [200_000]]).encode() + b"\0")
    digest.update(b"".join(raw[s : s + BLOCK_BYTES] for s in starts))
    assert fingerprint(Source(big)) == "blake2b-128:" + digest.hexdigest()
    assert starts[0] == 0
    assert starts[-1] + BLOCK_BYTES == n


def test_bfloat16_values_and_sharded_storage(
    tiny: dict[str, Path], tmp_path: Path, state: State
) -> None:
    tv = tmp_path / "small.tv"
    result = extract_vector(
        tiny["a"], tiny["base"], tv, recipe=make_recipe(dtype="bfloat16"), out_shard_size="20KB"
    )
    assert (tv / "model.safetensors.index.json").is_file()
    assert len(list(tv.glob("model-*.safetensors"))) > 1
    assert (
        result.stored_bytes == result.dense_bytes == sum(t.numel() * 2 for t in state(tv).values())
    )
    base, ft = state(tiny["base"]), state(tiny["a"])
    with TaskVector.open(tv) as vector:
        for name in base:
            got = vector.read(name)
            assert got.dtype == torch.bfloat16
            assert torch.equal(got, (ft[name] - base[name]).to(torch.bfloat16)), name
