"""Reading a ``.tv`` artifact: a :class:`~mergelab.engine.TensorSource` of dense deltas.

Opening reads ``vector.json`` and the safetensors headers only, and checks that they agree
(every stored tensor present with the planned shape and dtype, nothing extra), so a corrupt
or truncated artifact fails before any work starts. ``read(name)`` rebuilds the dense delta
of one model tensor (scatter, bit unpacking or ``B @ A``), checking indices and counts.
See :mod:`mergelab.vectors.format` for the layout.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import TracebackType

import torch
from pydantic import ValidationError

from mergelab.checkpoint import Checkpoint, TensorInfo
from mergelab.errors import CheckpointError, VectorError
from mergelab.vectors import sparse
from mergelab.vectors.format import META_FILE, Stored, VectorMeta, storage_infos

_FIX = "re-extract it with `mergelab vector extract`"


def is_vector(path: str | Path) -> bool:
    """Whether ``path`` is a task-vector artifact folder (it holds ``vector.json``)."""
    return (Path(path).expanduser() / META_FILE).is_file()


def read_meta(folder: Path) -> VectorMeta:
    """The validated ``vector.json`` of ``folder``; VectorError when missing or corrupt."""
    path = folder / META_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return VectorMeta.model_validate(data)
    except FileNotFoundError:
        raise VectorError(
            f"{folder} is not a task-vector artifact (no {META_FILE}); give a .tv folder made "
            "by `mergelab vector extract`"
        ) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = _first_error(exc)
        raise VectorError(
            f"task vector {folder} is corrupt: {META_FILE} {reason}; {_FIX}"
        ) from None


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "root"
        return f"has a bad field {where} ({err['msg']})"
    return f"is not valid JSON ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"


class TaskVector:
    """An opened artifact: ``tensors`` (dense names, shapes, value dtype) and ``read(name)``."""

    def __init__(self, path: Path, meta: VectorMeta, storage: Checkpoint) -> None:
        self.path = path
        self.meta = meta
        self._storage = storage
        dtype = meta.recipe.value_dtype
        self.tensors: dict[str, TensorInfo] = {
            name: TensorInfo(name, stored.shape, dtype) for name, stored in meta.tensors.items()
        }

    @classmethod
    def open(cls, path: str | Path) -> TaskVector:
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise VectorError(
                f"task vector {path} does not exist; give a .tv folder made by "
                "`mergelab vector extract` (or a name in the vector store)"
            )
        meta = read_meta(folder)
        try:
            storage = Checkpoint.open(folder)
        except CheckpointError as exc:
            raise VectorError(f"task vector {folder} is corrupt: {exc}") from None
        problem = _layout_problem(meta, storage)
        if problem is not None:
            storage.close()
            raise VectorError(f"task vector {folder} is corrupt: {problem}; {_FIX}")
        return cls(folder.resolve(), meta, storage)

    @property
    def name(self) -> str:
        return self.meta.name

    def read(self, name: str) -> torch.Tensor:
        """The dense delta of model tensor ``name`` (value dtype; float32 for low rank)."""
        stored = self.meta.tensors[name]
        get = self._storage.read
        if stored.kind == "dense":
            return get(name)
        if stored.kind == "lowrank":
            a, b = get(f"{name}::A").float(), get(f"{name}::B").float()
            return b @ a  # (out, r) @ (r, in) -> (out, in)
        values = get(f"{name}::values")
        if stored.kind == "coo":
            indices = get(f"{name}::indices").long()
            if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= stored.numel):
                raise VectorError(
                    f"task vector {self.path} is corrupt: {name}::indices points outside the "
                    f"tensor's {stored.numel} entries; {_FIX}"
                )
        else:
            indices = sparse.unpack_bits(get(f"{name}::mask"), stored.numel)
            if indices.numel() != values.numel():
                raise VectorError(
                    f"task vector {self.path} is corrupt: {name}::mask sets {indices.numel()} "
                    f"bits for {values.numel()} values; {_FIX}"
                )
        return sparse.scatter(indices, values, stored.shape)

    def stored_bytes(self) -> int:
        """Bytes of tensor data in the artifact (the PEFT copy excluded)."""
        return sum(info.nbytes for info in self._storage.tensors.values())

    def close(self) -> None:
        self._storage.close()

    def __enter__(self) -> TaskVector:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TaskVector({str(self.path)!r}, {len(self.tensors)} tensors)"


def _layout_problem(meta: VectorMeta, storage: Checkpoint) -> str | None:
    """The first disagreement between ``vector.json`` and the stored tensors, or None."""
    dtype = meta.recipe.value_dtype
    expected: dict[str, TensorInfo] = {}
    for name, stored in meta.tensors.items():
        problem = _stored_problem(name, stored)
        if problem is not None:
            return problem
        expected.update({i.name: i for i in storage_infos(name, stored, dtype)})
    for key, info in expected.items():
        found = storage.tensors.get(key)
        if found is None:
            return f"stored tensor {key!r} is missing"
        if found.shape != info.shape or found.dtype != info.dtype:
            return (
                f"stored tensor {key!r} is {found.dtype} {list(found.shape)}, "
                f"{META_FILE} says {info.dtype} {list(info.shape)}"
            )
    extra = sorted(set(storage.tensors) - set(expected))
    if extra:
        return f"stored tensor {extra[0]!r} is not described in {META_FILE}"
    return None


def _stored_problem(name: str, stored: Stored) -> str | None:
    if stored.kind in ("coo", "bitmask") and (stored.count is None or stored.count > stored.numel):
        return f"{name} is {stored.kind} with count {stored.count} for {stored.numel} entries"
    if stored.kind == "lowrank" and (len(stored.shape) != 2 or stored.rank is None):
        return f"{name} is lowrank with shape {list(stored.shape)} and rank {stored.rank}"
    return None
