"""The safetensors file format: header parsing with validation, header layout, one-file reader.

Format (https://github.com/huggingface/safetensors#format and the Hugging Face docs)::

    [8 bytes: N, little-endian u64] [N bytes: JSON header] [data buffer]
    header = {"__metadata__": {str: str}?, name: {"dtype": "F32", "shape": [..],
              "data_offsets": [begin, end]}, ...}      # offsets relative to the data buffer

Layout rules of the reference writer (``safetensors.torch.save_file``), found by experiment on
safetensors 0.8 and reproduced by :func:`encode_header` so mergelab's output is byte-identical:

- tensors are sorted by element size descending, then by the library's dtype rank descending
  (``_RANK`` below), then by name (code-point order, which equals UTF-8 byte order);
- data is packed with no gaps; the compact JSON (no spaces, non-ASCII kept) lists
  ``__metadata__`` first when given, then the tensors in data order;
- the JSON is padded with spaces to a multiple of 8 bytes, so the data buffer starts 8-aligned.

Deviations: the reference writer emits metadata keys in hash order (it differs from run to
run); we keep the caller's order. The reader accepts gaps between tensors and trailing bytes
after the last one (the reference reader rejects both) because they do no harm.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import struct
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mergelab.errors import CheckpointError

# Reference readers refuse headers above 100 MB; so do we (a larger N means a corrupt file).
MAX_HEADER_BYTES = 100_000_000
_FIX = "re-download or re-export the checkpoint"


def _optional_dtypes() -> dict[str, torch.dtype]:
    names = {
        "F8_E4M3": "float8_e4m3fn",
        "F8_E5M2": "float8_e5m2",
        "F8_E4M3FNUZ": "float8_e4m3fnuz",
        "F8_E5M2FNUZ": "float8_e5m2fnuz",
        "U16": "uint16",
        "U32": "uint32",
        "U64": "uint64",
    }
    found = {code: getattr(torch, attr, None) for code, attr in names.items()}
    return {code: dtype for code, dtype in found.items() if isinstance(dtype, torch.dtype)}


DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
    "C64": torch.complex64,
    **_optional_dtypes(),
}
DTYPE_CODES: dict[torch.dtype, str] = {dtype: code for code, dtype in DTYPES.items()}

# Declaration order of the reference library's Dtype enum (its sort key after element size).
_ENUM_ORDER = [
    "BOOL",
    "U8",
    "I8",
    "F8_E5M2",
    "F8_E4M3",
    "F8_E4M3FNUZ",
    "F8_E5M2FNUZ",
    "I16",
    "U16",
    "F16",
    "BF16",
    "I32",
    "U32",
    "F32",
    "C64",
    "F64",
    "I64",
    "U64",
]
_RANK = {code: i for i, code in enumerate(_ENUM_ORDER)}


def dtype_code(dtype: torch.dtype) -> str:
    """The safetensors code of a torch dtype (``torch.bfloat16`` -> ``"BF16"``)."""
    code = DTYPE_CODES.get(dtype)
    if code is None:
        supported = ", ".join(str(d).removeprefix("torch.") for d in DTYPE_CODES)
        raise ValueError(f"dtype {dtype} cannot be stored in safetensors; use one of {supported}")
    return code


@dataclass(frozen=True)
class HeaderEntry:
    """One tensor of a safetensors header; ``begin``/``end`` are offsets into the data buffer."""

    name: str
    dtype: torch.dtype
    shape: tuple[int, ...]
    begin: int
    end: int


@dataclass(frozen=True)
class Header:
    """A parsed, validated header: entries in data order, metadata, where the data starts."""

    entries: dict[str, HeaderEntry]
    metadata: dict[str, str]
    data_start: int
    file_size: int


def _nbytes(dtype: torch.dtype, shape: Sequence[int]) -> int:
    return math.prod(shape) * dtype.itemsize


def encode_header(
    tensors: Sequence[tuple[str, torch.dtype, tuple[int, ...]]],
    metadata: Mapping[str, str] | None,
) -> tuple[bytes, dict[str, tuple[int, int]]]:
    """The bytes before the data buffer (length prefix + padded JSON) and each tensor's offsets.

    ``tensors`` are ``(name, dtype, shape)``; the layout follows the reference writer's rules
    (see the module docstring), whatever order they are given in.
    """
    order = sorted(
        tensors, key=lambda t: (-t[1].itemsize, -_RANK[dtype_code(t[1])], t[0])
    )  # element size desc, dtype rank desc, name asc
    header: dict[str, Any] = {}
    if metadata is not None:
        header["__metadata__"] = dict(metadata)
    offsets: dict[str, tuple[int, int]] = {}
    cursor = 0
    for name, dtype, shape in order:
        end = cursor + _nbytes(dtype, shape)
        offsets[name] = (cursor, end)
        header[name] = {
            "dtype": dtype_code(dtype),
            "shape": list(shape),
            "data_offsets": [cursor, end],
        }
        cursor = end
    text = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # pad to a multiple of 8: data starts 8-aligned
    return struct.pack("<Q", len(text)) + text, offsets


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"key {key!r} appears twice")
        seen[key] = value
    return seen


def _parse_entry(name: str, raw: Any) -> tuple[str, torch.dtype, tuple[int, ...], int, int]:
    """(name, dtype, shape, begin, end) of one header entry; ValueError says what is wrong."""
    if not isinstance(raw, dict) or set(raw) != {"dtype", "shape", "data_offsets"}:
        raise ValueError("entry must have exactly the keys dtype, shape, data_offsets")
    code, shape, offsets = raw["dtype"], raw["shape"], raw["data_offsets"]
    if code not in DTYPES:
        raise ValueError(f"unknown dtype {code!r} (this torch reads {', '.join(DTYPES)})")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise ValueError(f"shape {shape!r} is not a list of non-negative integers")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
        or not 0 <= offsets[0] <= offsets[1]
    ):
        raise ValueError(f"data_offsets {offsets!r} are not [begin, end] with 0 <= begin <= end")
    dtype = DTYPES[code]
    begin, end = offsets
    if end - begin != _nbytes(dtype, shape):
        raise ValueError(
            f"data_offsets {offsets} span {end - begin} bytes but shape {shape} of {code} "
            f"needs {_nbytes(dtype, shape)}"
        )
    return name, dtype, tuple(shape), begin, end


def read_header(path: Path) -> Header:
    """Parse and validate the header of the safetensors file ``path`` (reads only the header).

    Every problem is a one-line :class:`CheckpointError` naming the file (and the tensor).
    """
    try:
        with open(path, "rb") as f:
            file_size = os.fstat(f.fileno()).st_size
            prefix = f.read(8)
            if len(prefix) < 8:
                raise CheckpointError(
                    f"{path} is truncated ({file_size} bytes, too short for a safetensors "
                    f"header); {_FIX}"
                )
            (n,) = struct.unpack("<Q", prefix)
            if n > MAX_HEADER_BYTES or 8 + n > file_size:
                raise CheckpointError(
                    f"{path} is truncated or not a safetensors file: its header claims {n} "
                    f"bytes but the file has {file_size}; {_FIX}"
                )
            raw = f.read(n)
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}; check the path") from exc
    try:
        parsed = json.loads(raw.decode("utf-8"), object_pairs_hook=_reject_duplicates)
        if not isinstance(parsed, dict):
            raise ValueError("the header is not a JSON object")
    except (UnicodeDecodeError, ValueError) as exc:
        reason = str(exc).splitlines()[0]
        raise CheckpointError(
            f"{path} has a corrupt safetensors header ({reason}); {_FIX}"
        ) from exc
    metadata = parsed.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise CheckpointError(
            f"{path} has corrupt __metadata__ (must map strings to strings); {_FIX}"
        )
    data_start, data_size = 8 + n, file_size - 8 - n
    entries: list[HeaderEntry] = []
    for name, value in parsed.items():
        try:
            entries.append(HeaderEntry(*_parse_entry(name, value)))
        except ValueError as exc:
            raise CheckpointError(f"{path}: tensor {name!r} is corrupt: {exc}; {_FIX}") from exc
    entries.sort(key=lambda e: (e.begin, e.end))
    reach: HeaderEntry | None = None  # the non-empty tensor reaching furthest so far
    for entry in entries:
        if entry.end > data_size:
            raise CheckpointError(
                f"{path}: tensor {entry.name!r} ends at byte {entry.end} of the data but the "
                f"file holds only {data_size} data bytes (truncated?); {_FIX}"
            )
        if entry.end == entry.begin:
            continue
        if reach is not None and entry.begin < reach.end:
            raise CheckpointError(
                f"{path}: tensors {reach.name!r} and {entry.name!r} overlap "
                f"(data bytes {entry.begin}..{min(reach.end, entry.end)}); {_FIX}"
            )
        reach = entry
    return Header({e.name: e for e in entries}, metadata, data_start, file_size)


class SafetensorsFile:
    """A safetensors file opened read-only: header parsed up front, tensors read via mmap.

    Each :meth:`read` maps just that tensor's pages (copy-on-write, ``MAP_PRIVATE``): the
    tensor shares the page cache (zero copy), an accidental in-place write by a caller never
    reaches the file, and the mapping is released when the tensor is freed (the tensor holds
    the only reference to it), so resident memory follows the tensors alive, not the file size.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.header = read_header(path)
        self._fd: int | None = None
        self._lock = threading.Lock()

    @property
    def entries(self) -> dict[str, HeaderEntry]:
        return self.header.entries

    def _file(self) -> int:
        """The open file descriptor (opened on first use; the size must not have changed)."""
        with self._lock:
            if self._fd is None:
                try:
                    fd = os.open(self.path, os.O_RDONLY)
                except OSError as exc:
                    raise CheckpointError(
                        f"cannot open {self.path}: {exc.strerror or exc}; check the file"
                    ) from exc
                size = os.fstat(fd).st_size
                if size != self.header.file_size:
                    os.close(fd)
                    raise CheckpointError(
                        f"{self.path} changed size since it was opened "
                        f"({self.header.file_size} -> {size} bytes); do not modify inputs "
                        "during a run"
                    )
                self._fd = fd
            return self._fd

    def read(self, name: str) -> torch.Tensor:
        """Tensor ``name`` (must be in :attr:`entries`), a zero-copy view where aligned."""
        entry = self.header.entries[name]
        if entry.end == entry.begin:
            return torch.empty(entry.shape, dtype=entry.dtype)
        start = self.header.data_start + entry.begin
        page_start = start - start % mmap.ALLOCATIONGRANULARITY  # mmap offsets are page-aligned
        try:
            mapped = mmap.mmap(
                self._file(),
                self.header.data_start + entry.end - page_start,
                access=mmap.ACCESS_COPY,
                offset=page_start,
            )
        except OSError as exc:
            raise CheckpointError(
                f"cannot map {self.path}: {exc.strerror or exc}; check the file"
            ) from exc
        if hasattr(mmap, "MADV_WILLNEED"):  # start readahead now, so a prefetching caller
            mapped.madvise(mmap.MADV_WILLNEED)  # overlaps the disk read with other work
        nbytes, skip = entry.end - entry.begin, start - page_start
        if start % entry.dtype.itemsize == 0:
            count = nbytes // entry.dtype.itemsize
            flat = torch.frombuffer(mapped, dtype=entry.dtype, count=count, offset=skip)
        else:  # misaligned (never written so by the reference writer): copy into aligned memory
            raw = torch.frombuffer(mapped, dtype=torch.uint8, count=nbytes, offset=skip)
            flat = raw.clone().view(entry.dtype)
        return flat.reshape(entry.shape)

    def close(self) -> None:
        """Close the file; tensors already read keep their own mappings until freed."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
