"""Sparse task vectors: selections checked against numpy, encodings round-tripped, sizes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mergelab.vectors import TaskVector, Term, apply_state_dict, extract_vector, make_recipe
from mergelab.vectors.format import Stored, stored_bytes
from mergelab.vectors.sparse import kept_count, pack_bits, scatter, select, unpack_bits

State = Callable[[Path], dict[str, torch.Tensor]]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_magnitude_keeps_the_k_largest_entries() -> None:
    delta = torch.randn(40, 25, generator=_gen(1))
    indices, values = select(delta, 0.1, "magnitude", _gen())
    flat = delta.numpy().reshape(-1)
    want = np.sort(np.argsort(-np.abs(flat), kind="stable")[:100])  # int(0.1 * 1000) = 100
    np.testing.assert_array_equal(indices.numpy(), want)
    np.testing.assert_array_equal(values.numpy(), flat[want])


def test_dare_keeps_exactly_k_random_entries_rescaled_by_n_over_k() -> None:
    delta = torch.randn(30, 20, generator=_gen(2))  # n = 600
    indices, values = select(delta, 0.25, "dare", _gen(5))
    flat = delta.numpy().reshape(-1)
    assert indices.numel() == 150 == len(set(indices.tolist()))
    assert indices.tolist() == sorted(indices.tolist())
    np.testing.assert_allclose(values.numpy(), flat[indices.numpy()] * (600 / 150), rtol=1e-6)
    again, _ = select(delta, 0.25, "dare", _gen(5))
    other, _ = select(delta, 0.25, "dare", _gen(6))
    assert torch.equal(indices, again)
    assert not torch.equal(indices, other)


def test_dare_is_unbiased_over_draws() -> None:
    # E[kept delta] = delta: each entry is kept with probability k/n and scaled by n/k
    delta = torch.randn(64, generator=_gen(3))
    total = torch.zeros(64, dtype=torch.float64)
    draws = 4000
    for seed in range(draws):
        idx, vals = select(delta, 0.25, "dare", _gen(seed))
        total += scatter(idx, vals, (64,)).double()
    # std of the mean per entry: |d| sqrt((n/k - 1) / draws) = |d| * 0.027
    assert torch.allclose(total / draws, delta.double(), atol=0.15 * float(delta.abs().max()))


@settings(max_examples=50, deadline=None)
@given(bits=st.lists(st.booleans(), min_size=1, max_size=200))
def test_bit_packing_matches_numpy_little_endian(bits: list[bool]) -> None:
    indices = torch.tensor([i for i, b in enumerate(bits) if b], dtype=torch.int64)
    packed = pack_bits(indices, len(bits))
    want = np.packbits(np.array(bits, dtype=np.uint8), bitorder="little")
    np.testing.assert_array_equal(packed.numpy(), want)
    assert unpack_bits(packed, len(bits)).tolist() == indices.tolist()


def test_kept_count() -> None:
    assert kept_count(1000, 0.1) == 100
    assert kept_count(5, 0.1) == 1  # at least one entry
    assert kept_count(0, 0.5) == 0


@pytest.mark.parametrize(
    ("density", "kind"),
    [(0.01, "coo"), (0.1, "bitmask"), (0.95, "bitmask"), (0.99, "dense")],
)
def test_the_smallest_encoding_is_chosen(density: float, kind: str) -> None:
    # float32 values, n = 4096: coo 8k bytes, bitmask 512 + 4k, dense 16384
    n = 4096
    k = int(density * n)
    sizes = {"coo": 8 * k, "bitmask": n // 8 + 4 * k, "dense": 4 * n}
    assert min(sizes, key=lambda key: sizes[key]) == kind
    from mergelab.checkpoint import TensorInfo
    from mergelab.vectors.encode import plan_layout

    infos = {"w": TensorInfo("w", (64, 64), torch.float32)}
    stored = plan_layout(infos, make_recipe(density=density))["w"]
    assert stored.kind == kind
    assert stored_bytes("w", stored, torch.float32) == sizes[kind]


@pytest.mark.parametrize("mode", ["magnitude", "dare"])
@pytest.mark.parametrize("density", [0.02, 0.1, 0.99])
def test_sparse_round_trip(
    tiny: dict[str, Path], tmp_path: Path, state: State, mode: str, density: float
) -> None:
    """Reading the artifact gives the sparsified delta, whatever encoding each tensor got."""
    from mergelab.engine import tensor_seed

    tv = tmp_path / "s.tv"
    extract_vector(
        tiny["a"], tiny["base"], tv, recipe=make_recipe(density=density, sparsify=mode, seed=3)
    )
    base, ft = state(tiny["base"]), state(tiny["a"])
    with TaskVector.open(tv) as vector:
        kinds = {s.kind for s in vector.meta.tensors.values()}
        for name in base:
            delta = ft[name] - base[name]
            flat = delta.numpy().reshape(-1)
            n = flat.size
            k = max(1, int(density * n))
            got = vector.read(name).numpy().reshape(-1)
            kept = np.flatnonzero(got)
            assert kept.size == k, name
            if mode == "magnitude":
                want_idx = np.sort(np.argsort(-np.abs(flat), kind="stable")[:k])
                np.testing.assert_array_equal(kept, want_idx)
                np.testing.assert_array_equal(got[kept], flat[kept])
            else:  # the engine's per-tensor generator, seeded from (seed, name)
                gen = torch.Generator().manual_seed(tensor_seed(3, name, 1))
                u = torch.rand(n, generator=gen, dtype=torch.float64).numpy()
                want_idx = np.sort(np.argsort(-u, kind="stable")[:k])
                np.testing.assert_array_equal(kept, want_idx)
                np.testing.assert_allclose(got[kept], flat[kept] * (n / k), rtol=1e-6)
    assert {0.02: "coo", 0.1: "bitmask", 0.99: "dense"}[density] in kinds


def test_ten_percent_density_is_about_an_eighth_of_the_dense_size(
    tiny: dict[str, Path], tmp_path: Path
) -> None:
    dense = extract_vector(tiny["a"], tiny["base"], tmp_path / "d.tv")
    sparse = extract_vector(
        tiny["a"], tiny["base"], tmp_path / "s.tv", recipe=make_recipe(density=0.1, sparsify="dare")
    )
    # bitmask (1/8 byte per entry) + 10% float32 values = 0.525 of 4 bytes per entry
    assert sparse.stored_bytes == pytest.approx(0.13125 * dense.stored_bytes, rel=0.02)
    assert _data_bytes(tmp_path / "s.tv") == sparse.stored_bytes
    assert _data_bytes(tmp_path / "d.tv") == dense.stored_bytes == dense.dense_bytes


def _data_bytes(folder: Path) -> int:
    """Bytes of tensor data on disk: file sizes minus the 8-byte prefix and JSON header."""
    total = 0
    for shard in folder.glob("*.safetensors"):
        raw = shard.read_bytes()
        total += len(raw) - 8 - int.from_bytes(raw[:8], "little")
    return total


def test_applying_a_sparse_vector_adds_the_kept_entries_only(
    tiny: dict[str, Path], tmp_path: Path, state: State
) -> None:
    tv = tmp_path / "m.tv"
    extract_vector(tiny["a"], tiny["base"], tv, recipe=make_recipe(density=0.05))
    out = apply_state_dict(tiny["base"], [Term(str(tv), 2.0)])
    base, ft = state(tiny["base"]), state(tiny["a"])
    for name in base:
        delta = (ft[name] - base[name]).numpy().reshape(-1)
        k = max(1, int(0.05 * delta.size))
        keep = np.argsort(-np.abs(delta), kind="stable")[:k]
        sparse = np.zeros_like(delta)
        sparse[keep] = delta[keep]
        want = base[name].numpy().reshape(-1) + 2.0 * sparse
        np.testing.assert_allclose(out[name].numpy().reshape(-1), want, rtol=0, atol=1e-6)


def test_stored_kinds_in_metadata_match_the_files(tiny: dict[str, Path], tmp_path: Path) -> None:
    tv = tmp_path / "c.tv"
    extract_vector(tiny["a"], tiny["base"], tv, recipe=make_recipe(density=0.01))
    with TaskVector.open(tv) as vector:
        for _name, stored in vector.meta.tensors.items():
            assert isinstance(stored, Stored)
            assert stored.count == max(1, int(0.01 * stored.numel))
        assert vector.stored_bytes() == sum(
            stored_bytes(n, s, torch.float32) for n, s in vector.meta.tensors.items()
        )
