"""Streaming sharded safetensors writer: headers first, tensors written at their offsets.

The writer is given every output tensor's name, shape and dtype up front (the merge plan knows
them), so it lays out every shard, writes each header and preallocates each file before any
tensor exists. ``write`` then puts a tensor's bytes straight at its offset with ``os.pwrite``,
and ``write_rows`` a block of a tensor's rows at theirs: tensors and blocks may arrive in any
order, from several threads, and no shard (nor a large tensor) is ever held in memory. Each
write asks the kernel to start writing its bytes to disk right away (``sync_file_range``
where Linux has it), so the disk works while the merge computes and the final ``fsync``
waits only for the last writes.

Shards follow the Hugging Face convention (``model.safetensors``, or
``model-00001-of-0000N.safetensors`` plus ``model.safetensors.index.json`` with
``{"metadata": {"total_size": bytes}, "weight_map": {name: file}}``). Tensors go to shards in
the given order; a shard closes when the next tensor would take it over ``max_shard_bytes``
(a tensor larger than the limit gets a shard of its own). Within a shard, the layout is the
reference writer's (:func:`mergelab.safetensors_format.encode_header`), so each shard is
byte-identical to ``safetensors.torch.save_file`` of its tensors (one metadata key or none;
see that module for why several keys may be ordered differently).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from mergelab.checkpoint import TensorInfo
from mergelab.errors import ConfigError, OutputError
from mergelab.safetensors_format import dtype_code, encode_header

logger = logging.getLogger(__name__)

INDEX_NAME = "model.safetensors.index.json"


@dataclass(frozen=True)
class _Shard:
    """One output file: its header bytes and each tensor's absolute byte offset in it."""

    file: str
    header: bytes
    offsets: dict[str, int]
    size: int  # file size in bytes: header + data


def _layout_shard(
    file: str, infos: Sequence[TensorInfo], metadata: dict[str, str] | None
) -> _Shard:
    header, relative = encode_header([(i.name, i.dtype, i.shape) for i in infos], metadata)
    data_size = max((end for _, end in relative.values()), default=0)
    offsets = {name: len(header) + begin for name, (begin, _) in relative.items()}
    return _Shard(file, header, offsets, len(header) + data_size)


def _group(entries: Sequence[TensorInfo], max_shard_bytes: int | None) -> list[list[TensorInfo]]:
    """Tensors per shard, in order: a shard closes when the next tensor would overflow it."""
    groups: list[list[TensorInfo]] = [[]]
    size = 0
    for info in entries:
        if max_shard_bytes is not None and groups[-1] and size + info.nbytes > max_shard_bytes:
            groups.append([])
            size = 0
        groups[-1].append(info)
        size += info.nbytes
    return groups


def _shard_name(index: int, count: int) -> str:
    if count == 1:
        return "model.safetensors"
    return f"model-{index + 1:05d}-of-{count:05d}.safetensors"


def _write_all(fd: int, data: memoryview, offset: int) -> None:
    """pwrite until every byte is written (a single call may write fewer)."""
    start, size = offset, len(data)
    while data:
        written = os.pwrite(fd, data, offset)
        if written == 0:
            raise OSError(errno.EIO, "write returned 0 bytes")
        data, offset = data[written:], offset + written
    start_writeback(fd, start, size)


@functools.cache
def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """libc's ``sync_file_range`` (Linux), or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        func = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").sync_file_range
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    return func


_SYNC_FILE_RANGE_WRITE = 2


def start_writeback(fd: int, offset: int, size: int) -> None:
    """Start writing ``size`` bytes at ``offset`` of ``fd`` to disk, without waiting for them
    (durability still comes from the final fsync); nothing where the call is missing."""
    func = _sync_file_range()
    if func is not None and size > 0:
        func(fd, offset, size, _SYNC_FILE_RANGE_WRITE)  # an error here is only a lost hint


class ShardedSafetensorsWriter:
    """Writes a planned set of tensors into safetensors shards in ``folder``.

    ``total_bytes`` is the tensor data size (the index's ``total_size``), ``shard_files`` the
    shard file names in order. Call :meth:`finish` after the last write, or :meth:`abort`.
    """

    def __init__(
        self,
        folder: Path,
        entries: Sequence[TensorInfo],
        *,
        max_shard_bytes: int | None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        if max_shard_bytes is not None and max_shard_bytes < 1:
            raise ConfigError(
                f"shard size {max_shard_bytes} is not positive; give e.g. 5GB, or no limit"
            )
        if metadata is not None and not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
        ):
            raise ValueError(f"metadata {metadata!r} must map strings to strings")
        self.folder = Path(folder)
        self._infos: dict[str, TensorInfo] = {}
        for info in entries:
            if info.name == "__metadata__":
                raise ValueError("a tensor cannot be named '__metadata__' (reserved by the format)")
            if info.name in self._infos:
                raise ValueError(f"tensor {info.name!r} is planned twice; names must be unique")
            dtype_code(info.dtype)  # ValueError for dtypes safetensors cannot store
            self._infos[info.name] = info
        groups = _group(entries, max_shard_bytes)
        self._shards = [
            _layout_shard(_shard_name(i, len(groups)), group, metadata)
            for i, group in enumerate(groups)
        ]
        self.shard_files = [s.file for s in self._shards]
        self.total_bytes = sum(i.nbytes for i in entries)
        self._shard_of = {name: s for s in self._shards for name in s.offsets}
        self._fds: dict[str, int] = {}
        self._started: set[str] = set()
        self._done: set[str] = set()
        self._rows_left: dict[str, int] = {}  # tensors written in row blocks: rows to come
        self._lock = threading.Lock()
        self._state = "open"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._fail(".", exc) from exc
        try:
            for shard in self._shards:
                self._create(shard)
        except BaseException:
            self.abort()
            raise
        logger.debug("planned %d shards in %s", len(self._shards), self.folder)

    def _fail(self, file: str, exc: OSError) -> OutputError:
        reason = exc.strerror or str(exc)
        return OutputError(
            f"could not write {self.folder / file}: {reason}; free space or choose another "
            "output folder"
        )

    def _create(self, shard: _Shard) -> None:
        """Create the shard file, write its header and reserve its full size on disk."""
        try:
            fd = os.open(self.folder / shard.file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
            self._fds[shard.file] = fd
            _write_all(fd, memoryview(shard.header), 0)
            os.ftruncate(fd, shard.size)  # unwritten bytes read as zeros
            if hasattr(os, "posix_fallocate"):
                try:  # reserve the blocks now, so a full disk fails here and not mid-merge
                    os.posix_fallocate(fd, 0, shard.size)
                except OSError as exc:
                    if exc.errno == errno.ENOSPC:
                        raise
                    logger.debug("no preallocation on this filesystem: %s", exc)
        except OSError as exc:
            raise self._fail(shard.file, exc) from exc

    def write(self, name: str, tensor: torch.Tensor) -> None:
        """Write tensor ``name`` at its offset; its shape and dtype must match the plan."""
        info = self._planned(name, tensor)
        if tuple(tensor.shape) != info.shape:
            raise ValueError(
                f"tensor {name!r} is {tensor.dtype} {list(tensor.shape)} but the plan says "
                f"{info.dtype} {list(info.shape)}"
            )
        with self._lock:
            self._check_open(name)
            if name in self._started:
                raise ValueError(f"tensor {name!r} is written twice")
            self._started.add(name)
        self._put(name, tensor, 0)
        with self._lock:
            self._done.add(name)

    def write_rows(self, name: str, first_row: int, rows: torch.Tensor) -> None:
        """Write ``rows``, rows ``first_row`` onwards of tensor ``name`` (its dtype, its shape
        past the first dimension), at their offset. Each row must come once; the tensor is
        complete when its last rows arrive. A tensor of fewer than two dimensions comes whole."""
        info = self._planned(name, rows)
        total = info.shape[0] if len(info.shape) >= 2 else 1
        count = rows.shape[0] if len(info.shape) >= 2 else 1
        block_ok = (
            tuple(rows.shape[1:]) == info.shape[1:]
            if len(info.shape) >= 2
            else tuple(rows.shape) == info.shape
        )
        if not block_ok or first_row < 0 or first_row + count > total:
            raise ValueError(
                f"rows {first_row}.. of shape {list(rows.shape)} do not fit tensor {name!r} "
                f"{list(info.shape)}"
            )
        with self._lock:
            self._check_open(name)
            left = self._rows_left.get(name, 0 if name in self._started else total)
            if count > left:
                raise ValueError(f"tensor {name!r} is written twice")
            self._started.add(name)
            self._rows_left[name] = left
        self._put(name, rows, first_row * (info.nbytes // total))
        with self._lock:
            self._rows_left[name] -= count
            if self._rows_left[name] == 0:
                self._done.add(name)

    def _planned(self, name: str, tensor: torch.Tensor) -> TensorInfo:
        """The plan's entry for ``name``; ValueError when absent or of another dtype."""
        info = self._infos.get(name)
        if info is None:
            raise ValueError(f"tensor {name!r} is not in this writer's plan")
        if tensor.dtype != info.dtype:
            raise ValueError(
                f"tensor {name!r} is {tensor.dtype} {list(tensor.shape)} but the plan says "
                f"{info.dtype} {list(info.shape)}"
            )
        return info

    def _check_open(self, name: str) -> None:
        if self._state != "open":
            raise ValueError(f"cannot write {name!r}: the writer is {self._state}")

    def _put(self, name: str, tensor: torch.Tensor, offset: int) -> None:
        """pwrite ``tensor``'s bytes at ``offset`` bytes into tensor ``name``'s place."""
        shard = self._shard_of[name]
        data = tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8)
        try:
            if data.numel():
                _write_all(
                    self._fds[shard.file],
                    memoryview(data.numpy().data),
                    shard.offsets[name] + offset,
                )
        except OSError as exc:
            raise self._fail(shard.file, exc) from exc

    def finish(self) -> None:
        """Check every tensor was written, write the index when sharded, fsync, close."""
        with self._lock:
            if self._state != "open":
                raise ValueError(f"cannot finish: the writer is {self._state}")
            missing = [n for n in self._infos if n not in self._done]
            if missing:
                shown = ", ".join(repr(n) for n in missing[:5])
                more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
                raise OutputError(
                    f"output incomplete: {len(missing)} planned tensors were never written "
                    f"({shown}{more}); this is a bug in the caller, please report it"
                )
            self._state = "finishing"
        current = self._shards[0].file
        try:
            for file, fd in list(self._fds.items()):
                current = file
                os.fsync(fd)
                os.close(self._fds.pop(file))
            if len(self._shards) > 1:
                current = INDEX_NAME
                self._write_index()
            current = "."
            dir_fd = os.open(self.folder, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            self.abort()
            raise self._fail(current, exc) from exc
        self._state = "finished"

    def _write_index(self) -> None:
        index = {
            "metadata": {"total_size": self.total_bytes},
            "weight_map": {name: self._shard_of[name].file for name in self._infos},
        }
        with open(self.folder / INDEX_NAME, "w", encoding="utf-8") as f:
            f.write(json.dumps(index, indent=2, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def abort(self) -> None:
        """Close every file without finishing (the caller removes the folder)."""
        with self._lock:
            self._state = "aborted"
        for file in list(self._fds):
            try:
                os.close(self._fds.pop(file))
            except OSError:
                logger.debug("closing %s failed during abort", file)
