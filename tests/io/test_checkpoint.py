"""Checkpoint: layouts, dtypes, zero-copy reads, and one clear error per kind of bad input."""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from mergelab.checkpoint import Checkpoint, TensorInfo
from mergelab.errors import CheckpointError
from mergelab.safetensors_format import DTYPES

RawWriter = Callable[..., Path]


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal dtype, shape and bytes (works for every dtype, NaN and float8 included)."""
    return (
        a.dtype == b.dtype
        and a.shape == b.shape
        and torch.equal(a.reshape(-1).view(torch.uint8), b.reshape(-1).view(torch.uint8))
    )


def sample(dtype: torch.dtype, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if dtype.is_floating_point or dtype.is_complex:
        return (torch.randn(shape, generator=g) * 3).to(dtype)
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=g).bool()
    return torch.randint(0, 100, shape, generator=g).to(dtype)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_dtype_reads_like_load_file(model_dir: Path) -> None:
    tensors = {
        f"t.{code}": sample(dtype, (3, 2), i) for i, (code, dtype) in enumerate(DTYPES.items())
    }
    tensors["scalar"] = torch.tensor(2.5, dtype=torch.bfloat16)
    tensors["empty"] = torch.zeros(0, 4)
    save_file(tensors, model_dir / "model.safetensors")
    expected = load_file(model_dir / "model.safetensors")
    with Checkpoint.open(model_dir) as ckpt:
        assert set(ckpt.tensors) == set(tensors)
        for name, want in expected.items():
            info = ckpt.tensors[name]
            assert (info.shape, info.dtype) == (tuple(want.shape), want.dtype)
            assert same(ckpt.read(name), want), name


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_float_round_trip_values(model_dir: Path, dtype: torch.dtype) -> None:
    # Values exactly representable in every one of these dtypes: must come back exactly.
    values = torch.tensor([[0.0, -1.5, 2.25], [1024.0, -0.125, 3.0]])
    save_file({"w": values.to(dtype)}, model_dir / "model.safetensors")
    with Checkpoint.open(model_dir) as ckpt:
        got = ckpt.read("w")
    assert got.dtype == dtype
    assert got.float().tolist() == values.tolist()


def test_tensor_info_sizes() -> None:
    info = TensorInfo("w", (3, 4, 5), torch.bfloat16)
    assert info.numel == 60
    assert info.nbytes == 120
    assert TensorInfo("s", (), torch.float64).nbytes == 8


def mappings_of(path: Path) -> list[tuple[int, int]]:
    """Address ranges of this process's memory mappings of ``path`` (Linux /proc/self/maps)."""
    ranges = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5] == str(path):
            start, end = (int(x, 16) for x in fields[0].split("-"))
            ranges.append((start, end))
    return ranges


def test_reads_are_zero_copy_mappings_released_with_the_tensor(model_dir: Path) -> None:
    path = model_dir / "model.safetensors"
    save_file({"a": torch.arange(6.0).reshape(2, 3), "b": torch.ones(4)}, path)
    with Checkpoint.open(model_dir) as ckpt:
        tensor = ckpt.read("a")
        address = tensor.data_ptr()
        assert any(start <= address < end for start, end in mappings_of(path.resolve()))
        del tensor
        gc.collect()
        assert mappings_of(path.resolve()) == []


def test_reads_never_touch_the_file(model_dir: Path) -> None:
    path = model_dir / "model.safetensors"
    save_file({"a": torch.arange(6.0).reshape(2, 3), "b": torch.ones(4)}, path)
    before, mtime = digest(path), path.stat().st_mtime_ns
    with Checkpoint.open(model_dir) as ckpt:
        ckpt.read("a").add_(100)  # a careless caller: the private mapping absorbs the write
        assert ckpt.read("a").tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    assert digest(path) == before
    assert path.stat().st_mtime_ns == mtime


def test_tensor_survives_close(model_dir: Path) -> None:
    save_file({"a": torch.arange(4.0)}, model_dir / "model.safetensors")
    ckpt = Checkpoint.open(model_dir)
    kept = ckpt.read("a")
    ckpt.close()
    assert kept.tolist() == [0.0, 1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="closed"):
        ckpt.read("a")


def test_unaligned_tensor_is_read_correctly(model_dir: Path, raw_safetensors: RawWriter) -> None:
    # A U8 tensor of 1 byte first puts the F32 tensor at data offset 1 (not 4-aligned).
    values = torch.tensor([1.5, -2.0, 3.25])
    header = {
        "flag": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]},
        "w": {"dtype": "F32", "shape": [3], "data_offsets": [1, 13]},
    }
    data = b"\x07" + values.numpy().tobytes()
    raw_safetensors(model_dir / "model.safetensors", header, data)
    with Checkpoint.open(model_dir) as ckpt:
        assert ckpt.read("w").tolist() == values.tolist()
        assert ckpt.read("flag").tolist() == [7]


def test_sharded_index_order_and_values(model_dir: Path) -> None:
    shard1 = {"z.first": torch.randn(2, 2), "a.second": torch.randn(3)}
    shard2 = {"m.third": torch.randn(4).half()}
    save_file(shard1, model_dir / "model-00001-of-00002.safetensors")
    save_file(shard2, model_dir / "model-00002-of-00002.safetensors")
    order = ["m.third", "z.first", "a.second"]
    files = {"z.first": 1, "a.second": 1, "m.third": 2}
    weight_map = {n: f"model-0000{files[n]}-of-00002.safetensors" for n in order}
    (model_dir / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": 36}, "weight_map": weight_map})
    )
    (model_dir / "config.json").write_text(json.dumps({"hidden_size": 32}))
    with Checkpoint.open(model_dir) as ckpt:
        assert list(ckpt.tensors) == order
        assert ckpt.config == {"hidden_size": 32}
        assert ckpt.path == model_dir.resolve()
        for name, tensor in {**shard1, **shard2}.items():
            assert same(ckpt.read(name), tensor)


def test_other_single_safetensors_file(model_dir: Path) -> None:
    save_file({"w": torch.ones(2)}, model_dir / "consolidated.safetensors")
    with Checkpoint.open(model_dir) as ckpt:
        assert ckpt.read("w").tolist() == [1.0, 1.0]
        assert ckpt.config is None


def test_file_reference_reads_only_that_file(model_dir: Path) -> None:
    save_file({"a": torch.ones(1)}, model_dir / "one.safetensors")
    save_file({"b": torch.zeros(1)}, model_dir / "two.safetensors")
    with Checkpoint.open(model_dir / "two.safetensors") as ckpt:
        assert list(ckpt.tensors) == ["b"]
        assert ckpt.path == model_dir.resolve()
    with pytest.raises(CheckpointError, match=r"one\.safetensors, two\.safetensors"):
        Checkpoint.open(model_dir)


def test_safetensors_preferred_over_bin(model_dir: Path) -> None:
    save_file({"w": torch.ones(2)}, model_dir / "model.safetensors")
    torch.save({"w": torch.zeros(2)}, model_dir / "pytorch_model.bin")
    with Checkpoint.open(model_dir) as ckpt:
        assert ckpt.read("w").tolist() == [1.0, 1.0]


def test_unknown_tensor_is_a_checkpoint_error(model_dir: Path) -> None:
    save_file({"w": torch.ones(2)}, model_dir / "model.safetensors")
    with Checkpoint.open(model_dir) as ckpt, pytest.raises(CheckpointError, match="'nope'"):
        ckpt.read("nope")


# ---- corrupt and missing inputs: each a CheckpointError naming the file ----------------------

F32_2 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


@pytest.mark.parametrize(
    ("header", "data", "length", "message"),
    [
        ({"w": F32_2}, bytes(8), 10_000, "truncated"),  # length field beyond the file
        ({"w": F32_2}, bytes(4), None, "truncated"),  # data cut short
        ({"w": {**F32_2, "dtype": "F7"}}, bytes(8), None, "unknown dtype 'F7'"),
        ({"w": {**F32_2, "data_offsets": [0, 12]}}, bytes(12), None, "needs 8"),
        ({"w": {**F32_2, "data_offsets": [4, 0]}}, bytes(8), None, "begin <= end"),
        ({"w": {**F32_2, "shape": [-2]}}, bytes(8), None, "non-negative"),
        ({"w": {"dtype": "F32", "shape": [2]}}, bytes(8), None, "exactly the keys"),
        (
            {"a": F32_2, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}},
            bytes(12),
            None,
            "overlap",
        ),
        ({"__metadata__": {"k": 1}, "w": F32_2}, bytes(8), None, "__metadata__"),
    ],
)
def test_corrupt_header(
    model_dir: Path,
    raw_safetensors: RawWriter,
    header: dict[str, object],
    data: bytes,
    length: int | None,
    message: str,
) -> None:
    path = raw_safetensors(model_dir / "model.safetensors", header, data, length=length)
    with pytest.raises(CheckpointError, match=message) as info:
        Checkpoint.open(model_dir)
    text = str(info.value)
    assert str(path) in text
    assert "\n" not in text
    assert "re-download or re-export" in text


def test_header_json_garbage_and_duplicates(model_dir: Path) -> None:
    path = model_dir / "model.safetensors"
    body = b'{"w": {"dtype": "F32", '
    body += b" " * (-len(body) % 8)
    path.write_bytes(len(body).to_bytes(8, "little") + body + bytes(8))
    with pytest.raises(CheckpointError, match="corrupt safetensors header") as info:
        Checkpoint.open(model_dir)
    assert str(path) in str(info.value)
    entry = b'{"dtype":"F32","shape":[1],"data_offsets":[0,4]}'
    body = b'{"w":' + entry + b',"w":' + entry + b"}"
    body += b" " * (-len(body) % 8)
    path.write_bytes(len(body).to_bytes(8, "little") + body + bytes(4))
    with pytest.raises(CheckpointError, match="appears twice"):
        Checkpoint.open(model_dir)


def test_tiny_file(model_dir: Path) -> None:
    path = model_dir / "model.safetensors"
    path.write_bytes(b"\x01\x02")
    with pytest.raises(CheckpointError, match="truncated") as info:
        Checkpoint.open(model_dir)
    assert str(path) in str(info.value)


def _sharded(folder: Path) -> None:
    save_file({"a": torch.ones(2)}, folder / "model-00001-of-00002.safetensors")
    save_file({"b": torch.ones(3)}, folder / "model-00002-of-00002.safetensors")


def _index(folder: Path, weight_map: dict[str, str]) -> None:
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))


def test_index_pointing_at_missing_file(model_dir: Path) -> None:
    _sharded(model_dir)
    _index(model_dir, {"a": "model-00001-of-00002.safetensors", "c": "model-00003.safetensors"})
    with pytest.raises(CheckpointError, match=r"model-00003\.safetensors \(1 tensors\)") as info:
        Checkpoint.open(model_dir)
    assert "model.safetensors.index.json" in str(info.value)


def test_index_pointing_at_missing_tensor(model_dir: Path) -> None:
    _sharded(model_dir)
    _index(
        model_dir,
        {"a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors"},
    )
    with pytest.raises(CheckpointError, match=r"'b' to model-00001-of-00002\.safetensors"):
        Checkpoint.open(model_dir)


def test_index_collects_all_problems(model_dir: Path, raw_safetensors: RawWriter) -> None:
    raw_safetensors(model_dir / "s1.safetensors", {"a": {**F32_2, "dtype": "X"}}, bytes(8))
    _index(model_dir, {"a": "s1.safetensors", "b": "gone.safetensors"})
    with pytest.raises(CheckpointError) as info:
        Checkpoint.open(model_dir)
    assert "s1.safetensors" in str(info.value)
    assert "gone.safetensors" in str(info.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not a valid shard index"),
        ('{"metadata": {}}', "no valid weight_map"),
        ('{"weight_map": {"a": "../elsewhere.safetensors"}}', "outside the model folder"),
    ],
)
def test_bad_index(model_dir: Path, content: str, message: str) -> None:
    (model_dir / "model.safetensors.index.json").write_text(content)
    with pytest.raises(CheckpointError, match=message) as info:
        Checkpoint.open(model_dir)
    assert "model.safetensors.index.json" in str(info.value)


def test_corrupt_config(model_dir: Path) -> None:
    save_file({"w": torch.ones(2)}, model_dir / "model.safetensors")
    (model_dir / "config.json").write_text("{oops")
    with pytest.raises(CheckpointError, match=r"config\.json"):
        Checkpoint.open(model_dir)


def test_folder_without_weights(model_dir: Path) -> None:
    with pytest.raises(CheckpointError, match="holds no model weights") as info:
        Checkpoint.open(model_dir)
    assert str(model_dir) in str(info.value)
    (model_dir / "adapter_config.json").write_text("{}")
    with pytest.raises(CheckpointError, match=r"LoRA adapter: write BASE_MODEL\+"):
        Checkpoint.open(model_dir)


# ---- PyTorch .bin inputs ----------------------------------------------------------------------


def test_bin_checkpoint_loads_with_warning(
    model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tensors = {"w": torch.randn(3, 2).bfloat16(), "b": torch.arange(3)}
    torch.save(tensors, model_dir / "pytorch_model.bin")
    with caplog.at_level(logging.WARNING), Checkpoint.open(model_dir) as ckpt:
        assert ckpt.tensors["w"] == TensorInfo("w", (3, 2), torch.bfloat16)
        for name, tensor in tensors.items():
            assert same(ckpt.read(name), tensor)
    assert "not streamed as efficiently" in caplog.text


def test_sharded_bin_checkpoint(model_dir: Path) -> None:
    torch.save({"a": torch.ones(2)}, model_dir / "pytorch_model-00001-of-00002.bin")
    torch.save({"b": torch.zeros(3)}, model_dir / "pytorch_model-00002-of-00002.bin")
    weight_map = {"b": "pytorch_model-00002-of-00002.bin", "a": "pytorch_model-00001-of-00002.bin"}
    (model_dir / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": weight_map}))
    with Checkpoint.open(model_dir) as ckpt:
        assert list(ckpt.tensors) == ["b", "a"]
        assert ckpt.read("a").tolist() == [1.0, 1.0]


class _Payload:
    """Unpickling this runs code: it creates the marker file named by ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, ...]]:
        return (os.mkdir, (str(self.path),))


@pytest.mark.parametrize("zip_format", [True, False])
def test_malicious_pickle_is_refused(model_dir: Path, tmp_path: Path, zip_format: bool) -> None:
    marker = tmp_path / "pwned"
    payload = {"w": torch.ones(2), "evil": _Payload(marker)}
    torch.save(payload, model_dir / "pytorch_model.bin", _use_new_zipfile_serialization=zip_format)
    with pytest.raises(CheckpointError, match="refuses to unpickle") as info:
        Checkpoint.open(model_dir)
    assert not marker.exists()
    text = str(info.value)
    assert "pytorch_model.bin" in text
    assert "safe_serialization=True" in text
    assert "\n" not in text


def test_garbage_bin(model_dir: Path) -> None:
    (model_dir / "pytorch_model.bin").write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint") as info:
        Checkpoint.open(model_dir)
    assert "pytorch_model.bin" in str(info.value)


def test_bin_without_a_flat_state_dict(model_dir: Path) -> None:
    torch.save({"state_dict": {"w": torch.ones(1)}}, model_dir / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="flat mapping"):
        Checkpoint.open(model_dir)
