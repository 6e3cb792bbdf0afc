"""ShardedSafetensorsWriter: byte-identical to save_file, any write order, clear failures."""

from __future__ import annotations

import errno
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from mergelab.checkpoint import Checkpoint, TensorInfo
from mergelab.errors import ConfigError, OutputError
from mergelab.safetensors_format import DTYPES
from mergelab.writer import ShardedSafetensorsWriter


def make(dtype: torch.dtype, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=g).bool()
    if dtype.is_floating_point or dtype.is_complex:
        return torch.randn(shape, generator=g).to(dtype)
    return torch.randint(0, 120, shape, generator=g).to(dtype)


def infos(tensors: dict[str, torch.Tensor]) -> list[TensorInfo]:
    return [TensorInfo(n, tuple(t.shape), t.dtype) for n, t in tensors.items()]


def write_all(
    folder: Path,
    tensors: dict[str, torch.Tensor],
    *,
    max_shard_bytes: int | None = None,
    metadata: dict[str, str] | None = None,
    order: list[str] | None = None,
) -> ShardedSafetensorsWriter:
    writer = ShardedSafetensorsWriter(
        folder, infos(tensors), max_shard_bytes=max_shard_bytes, metadata=metadata
    )
    for name in order if order is not None else list(tensors):
        writer.write(name, tensors[name])
    writer.finish()
    return writer


MIXED = {
    "model.embed.weight": make(torch.bfloat16, (5, 4), 0),
    "model.norm.weight": make(torch.float32, (4,), 1),
    "b.scale": make(torch.float64, (2, 3), 2),
    "a.counts": make(torch.int64, (3,), 3),
    "mask": make(torch.bool, (2, 2), 4),
    "q8": make(torch.float8_e4m3fn, (7,), 5),
    "h": make(torch.float16, (3, 1), 6),
    "ids": make(torch.int32, (1,), 7),
    "bytes": make(torch.uint8, (3,), 8),
    "small": make(torch.int8, (2,), 9),
    "scalar": torch.tensor(1.25),
    "empty": torch.zeros(0, 3, dtype=torch.bfloat16),
    'ünïcode "name"': make(torch.int16, (2,), 10),
    "ctrl\x01\n\t/\\\u2028\x7f": make(torch.uint8, (1,), 11),
}


@pytest.mark.parametrize("metadata", [None, {"format": "pt"}])
def test_single_shard_is_byte_identical_to_save_file(
    tmp_path: Path, metadata: dict[str, str] | None
) -> None:
    reference = tmp_path / "reference.safetensors"
    save_file(MIXED, reference, metadata=metadata)
    writer = write_all(tmp_path / "out", MIXED, metadata=metadata, order=sorted(MIXED)[::-1])
    assert writer.shard_files == ["model.safetensors"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["model.safetensors"]
    assert (tmp_path / "out" / "model.safetensors").read_bytes() == reference.read_bytes()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    spec=st.dictionaries(
        st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=6),
        st.tuples(
            st.sampled_from(sorted(DTYPES)),
            st.lists(st.integers(0, 3), min_size=0, max_size=3).map(tuple),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_any_tensor_set_matches_save_file(
    tmp_path_factory: pytest.TempPathFactory, spec: dict[str, tuple[str, tuple[int, ...]]]
) -> None:
    folder = tmp_path_factory.mktemp("prop")
    tensors = {n: make(DTYPES[code], shape, i) for i, (n, (code, shape)) in enumerate(spec.items())}
    save_file(tensors, folder / "reference.safetensors", metadata={"format": "pt"})
    write_all(folder / "out", tensors, metadata={"format": "pt"})
    expected = (folder / "reference.safetensors").read_bytes()
    assert (folder / "out" / "model.safetensors").read_bytes() == expected


def test_sharding_follows_entry_order_and_limit(tmp_path: Path) -> None:
    # nbytes: a=40, b=40, c=40, big=400, d=8; limit 100 -> [a, b] [c] [big] [d]
    tensors = {
        "a": make(torch.float32, (10,), 0),
        "b": make(torch.float32, (5, 2), 1),
        "c": make(torch.float32, (10,), 2),
        "big": make(torch.float32, (100,), 3),
        "d": make(torch.bfloat16, (4,), 4),
    }
    out = tmp_path / "out"
    writer = write_all(out, tensors, max_shard_bytes=100, metadata={"format": "pt"})
    files = [f"model-0000{i}-of-00004.safetensors" for i in range(1, 5)]
    assert writer.shard_files == files
    assert writer.total_bytes == 40 + 40 + 40 + 400 + 8
    groups = [["a", "b"], ["c"], ["big"], ["d"]]
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert index["metadata"] == {"total_size": 528}
    assert index["weight_map"] == {n: files[i] for i, g in enumerate(groups) for n in g}
    for file, group in zip(files, groups, strict=True):
        save_file({n: tensors[n] for n in group}, tmp_path / "ref.safetensors", {"format": "pt"})
        assert (out / file).read_bytes() == (tmp_path / "ref.safetensors").read_bytes(), file
    with Checkpoint.open(out) as ckpt:
        assert list(ckpt.tensors) == list(tensors)
        for name, tensor in tensors.items():
            assert torch.equal(ckpt.read(name), tensor)


def test_threads_and_any_order(tmp_path: Path) -> None:
    tensors = {f"layer.{i}.w": make(torch.bfloat16, (16, 8), i) for i in range(24)}
    writer = ShardedSafetensorsWriter(tmp_path / "out", infos(tensors), max_shard_bytes=1024)
    names = list(tensors)[::-1]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda n: writer.write(n, tensors[n]), names))
    writer.finish()
    loaded: dict[str, torch.Tensor] = {}
    for file in writer.shard_files:
        loaded.update(load_file(tmp_path / "out" / file))
    assert loaded.keys() == tensors.keys()
    for name, tensor in tensors.items():
        assert torch.equal(loaded[name], tensor)


def test_output_loads_in_transformers(tmp_path: Path) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=64,
    )
    torch.manual_seed(0)
    state = {k: v.to(torch.bfloat16) for k, v in LlamaForCausalLM(config).state_dict().items()}
    out = tmp_path / "out"
    write_all(out, state, max_shard_bytes=20_000, metadata={"format": "pt"})
    config.save_pretrained(out)
    loaded = LlamaForCausalLM.from_pretrained(out, dtype=torch.bfloat16)
    for name, tensor in loaded.state_dict().items():
        assert torch.equal(tensor, state[name]), name


def test_row_blocks_in_any_order_give_the_same_file(tmp_path: Path) -> None:
    tensors = {"m": make(torch.bfloat16, (10, 3), 1), "v": make(torch.float32, (6,), 2)}
    save_file(tensors, str(tmp_path / "ref.safetensors"))
    writer = ShardedSafetensorsWriter(tmp_path / "out", infos(tensors), max_shard_bytes=None)
    m = tensors["m"]
    with ThreadPoolExecutor(3) as pool:  # rows 7-9, 0-3, 4-6, from several threads
        for start, stop in ((7, 10), (0, 4), (4, 7)):
            pool.submit(writer.write_rows, "m", start, m[start:stop].clone()).result()
    writer.write_rows("v", 0, tensors["v"])  # fewer than two dimensions: one block, whole
    writer.finish()
    written = (tmp_path / "out" / "model.safetensors").read_bytes()
    assert written == (tmp_path / "ref.safetensors").read_bytes()


def test_row_blocks_are_checked(tmp_path: Path) -> None:
    entries = [TensorInfo("m", (4, 2), torch.float32), TensorInfo("v", (3,), torch.float32)]
    writer = ShardedSafetensorsWriter(tmp_path, entries, max_shard_bytes=None)
    with pytest.raises(ValueError, match="do not fit"):
        writer.write_rows("m", 3, torch.ones(2, 2))  # rows 3-4 of 4
    with pytest.raises(ValueError, match="do not fit"):
        writer.write_rows("m", 0, torch.ones(2, 3))  # wrong row width
    with pytest.raises(ValueError, match=r"'m' is torch.float64"):
        writer.write_rows("m", 0, torch.ones(2, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="do not fit"):
        writer.write_rows("v", 0, torch.ones(2))  # a vector comes whole
    writer.write_rows("m", 0, torch.ones(3, 2))
    with pytest.raises(ValueError, match="written twice"):
        writer.write_rows("m", 1, torch.ones(2, 2))  # only one row is left
    with pytest.raises(OutputError, match="never written"):
        writer.finish()  # m has a row missing, v was never written
    writer.abort()


# ---- misuse and failures -------------------------------------------------------------------


def small_writer(folder: Path) -> ShardedSafetensorsWriter:
    entries = [TensorInfo("a", (2,), torch.float32), TensorInfo("b", (3,), torch.float16)]
    return ShardedSafetensorsWriter(folder, entries, max_shard_bytes=None)


def test_rejects_unknown_wrong_and_repeated_tensors(tmp_path: Path) -> None:
    writer = small_writer(tmp_path)
    with pytest.raises(ValueError, match="'zzz' is not in"):
        writer.write("zzz", torch.ones(2))
    with pytest.raises(ValueError, match=r"'a' is torch.float32 \[3\]"):
        writer.write("a", torch.ones(3))
    with pytest.raises(ValueError, match=r"'a' is torch.float64 \[2\]"):
        writer.write("a", torch.ones(2, dtype=torch.float64))
    writer.write("a", torch.ones(2))
    with pytest.raises(ValueError, match="written twice"):
        writer.write("a", torch.ones(2))
    writer.abort()


def test_finish_names_missing_tensors(tmp_path: Path) -> None:
    writer = small_writer(tmp_path)
    writer.write("b", torch.ones(3, dtype=torch.float16))
    with pytest.raises(OutputError, match="1 planned tensors were never written \\('a'\\)"):
        writer.finish()
    writer.abort()


def test_no_writes_after_finish(tmp_path: Path) -> None:
    writer = small_writer(tmp_path)
    writer.write("a", torch.ones(2))
    writer.write("b", torch.ones(3, dtype=torch.float16))
    writer.finish()
    with pytest.raises(ValueError, match="finished"):
        writer.write("a", torch.ones(2))


def test_bad_plans(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="shard size 0"):
        ShardedSafetensorsWriter(tmp_path, [], max_shard_bytes=0)
    with pytest.raises(ValueError, match="planned twice"):
        ShardedSafetensorsWriter(
            tmp_path, [TensorInfo("a", (1,), torch.float32)] * 2, max_shard_bytes=None
        )
    with pytest.raises(ValueError, match="reserved"):
        ShardedSafetensorsWriter(
            tmp_path, [TensorInfo("__metadata__", (1,), torch.float32)], max_shard_bytes=None
        )
    with pytest.raises(ValueError, match="strings to strings"):
        ShardedSafetensorsWriter(tmp_path, [], max_shard_bytes=None, metadata={"n": 1})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="cannot be stored"):
        ShardedSafetensorsWriter(
            tmp_path, [TensorInfo("a", (1,), torch.complex128)], max_shard_bytes=None
        )


def _enospc(*args: object) -> int:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_disk_full_during_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = small_writer(tmp_path)
    monkeypatch.setattr(os, "pwrite", _enospc)
    with pytest.raises(OutputError) as info:
        writer.write("a", torch.ones(2))
    text = str(info.value)
    assert str(tmp_path / "model.safetensors") in text
    assert "No space left on device" in text
    assert "free space or choose another output folder" in text
    writer.abort()


def test_disk_full_when_preallocating(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "posix_fallocate", _enospc)
    with pytest.raises(OutputError, match="No space left on device"):
        small_writer(tmp_path)


def test_partial_pwrite_is_completed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.pwrite

    def one_byte_at_a_time(fd: int, data: memoryview, offset: int) -> int:
        return real(fd, bytes(data[:1]), offset)

    monkeypatch.setattr(os, "pwrite", one_byte_at_a_time)
    tensors = {"a": make(torch.float32, (3,), 0), "b": make(torch.float16, (3,), 1)}
    write_all(tmp_path / "out", tensors)
    save_file(tensors, tmp_path / "ref.safetensors")
    assert (tmp_path / "out" / "model.safetensors").read_bytes() == (
        tmp_path / "ref.safetensors"
    ).read_bytes()


def test_unwritable_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="could not write") as info:
        small_writer(blocker / "sub")
    assert str(blocker / "sub") in str(info.value)
