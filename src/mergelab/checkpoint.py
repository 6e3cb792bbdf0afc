"""Lazy checkpoint reader: headers up front, tensors on demand from a memory map.

A model folder holds one of (first match wins):

1. ``model.safetensors.index.json`` + shards (``model-0000k-of-0000n.safetensors``);
2. ``model.safetensors``;
3. exactly one other ``*.safetensors.index.json`` or ``*.safetensors`` file;
4. ``pytorch_model.bin.index.json`` + shards, or ``pytorch_model.bin``.

Opening reads only the index and each shard's header and validates all of it (see
:mod:`mergelab.safetensors_format`), so a corrupt input fails before any merge work starts.
PyTorch ``.bin`` files have no header: they are loaded with ``torch.load(weights_only=True,
mmap=True)`` (zip format; legacy files without mmap), which keeps tensors on disk until touched
but cannot be validated without unpickling; a pickle that needs arbitrary code is refused.

``model+adapter`` references return a checkpoint whose tensors have a PEFT LoRA applied
(:mod:`mergelab.lora`).
"""

from __future__ import annotations

import json
import logging
import math
import pickle
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import torch

from mergelab.errors import CheckpointError, join_problems
from mergelab.lora import LoraAdapter, load_lora
from mergelab.model_ref import resolve_model_ref, split_lora_ref
from mergelab.safetensors_format import SafetensorsFile

logger = logging.getLogger(__name__)

_FIX = "re-download or re-export the checkpoint"
_CONVERT = (
    'convert it to safetensors in a trusted environment, e.g. `python -c "import torch; '
    "from safetensors.torch import save_file; save_file(torch.load('{path}', weights_only=False),"
    " 'model.safetensors')\"` or transformers' save_pretrained(out, safe_serialization=True)"
)


@dataclass(frozen=True)
class TensorInfo:
    """Name, shape and dtype of one tensor, known without reading its data."""

    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel * self.dtype.itemsize


def load_torch_bin(path: Path) -> dict[str, torch.Tensor]:
    """A PyTorch ``.bin`` state dict, unpickled with ``weights_only=True`` only (mmap if zip)."""
    try:
        loaded = torch.load(
            path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path)
        )
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path} is a pickle that needs arbitrary code to load; mergelab refuses to unpickle "
            f"it. If you trust it, {_CONVERT.format(path=path)}"
        ) from exc
    except Exception as exc:  # torch raises many types for corrupt files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint ({reason}); {_FIX}"
        ) from exc
    if not isinstance(loaded, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items()
    ):
        raise CheckpointError(
            f"{path} does not hold a flat mapping of names to tensors; {_CONVERT.format(path=path)}"
        )
    return loaded


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = str(exc).splitlines()[0]
        raise CheckpointError(f"{path} is not a valid {what} ({reason}); {_FIX}") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} is not a valid {what} (not a JSON object); {_FIX}")
    return data


def _weight_map(index_path: Path) -> dict[str, str]:
    """``weight_map`` of a shard index: tensor name -> shard file name in the same folder."""
    weight_map = _read_json(index_path, "shard index").get("weight_map")
    if not isinstance(weight_map, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()
    ):
        raise CheckpointError(f"{index_path} has no valid weight_map (name -> file); {_FIX}")
    for file in set(weight_map.values()):
        if Path(file).is_absolute() or ".." in Path(file).parts:
            raise CheckpointError(
                f"{index_path} points at {file!r}, outside the model folder; {_FIX}"
            )
    return weight_map


def _weight_files(folder: Path) -> tuple[Path | None, list[Path]]:
    """(index file or None, weight files) of a model folder, by the rules in the docstring."""
    if (folder / "model.safetensors.index.json").is_file():
        return folder / "model.safetensors.index.json", []
    if (folder / "model.safetensors").is_file():
        return None, [folder / "model.safetensors"]
    indexes = sorted(folder.glob("*.safetensors.index.json"))
    singles = sorted(
        p for p in folder.glob("*.safetensors") if p.name != "adapter_model.safetensors"
    )
    for found, is_index in ((indexes, True), (singles, False)):
        if len(found) > 1:
            names = ", ".join(p.name for p in found)
            raise CheckpointError(
                f"{folder} holds several weight files ({names}) and no "
                "model.safetensors.index.json; keep one or add an index"
            )
        if found:
            return (found[0], []) if is_index else (None, found)
    if (folder / "pytorch_model.bin.index.json").is_file():
        return folder / "pytorch_model.bin.index.json", []
    if (folder / "pytorch_model.bin").is_file():
        return None, [folder / "pytorch_model.bin"]
    hint = (
        f"it looks like a LoRA adapter: write BASE_MODEL+{folder}"
        if (folder / "adapter_config.json").is_file()
        else "check the path, or download the weights (`hf download` fetches them)"
    )
    raise CheckpointError(f"{folder} holds no model weights (model.safetensors or shards); {hint}")


class _BinFile:
    """A ``.bin`` state dict behind the same small interface as SafetensorsFile."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tensors = load_torch_bin(path)

    def read(self, name: str) -> torch.Tensor:
        return self.tensors[name]

    def close(self) -> None:
        self.tensors = {}


_File = SafetensorsFile | _BinFile


def _infos(file: _File) -> Iterator[TensorInfo]:
    if isinstance(file, SafetensorsFile):
        return (TensorInfo(e.name, e.shape, e.dtype) for e in file.entries.values())
    return (TensorInfo(n, tuple(t.shape), t.dtype) for n, t in file.tensors.items())


def _open_file(path: Path) -> _File:
    if path.suffix == ".safetensors":
        return SafetensorsFile(path)
    logger.warning(
        "%s is a PyTorch .bin checkpoint: it is unpickled (weights_only) and not streamed as "
        "efficiently as safetensors; convert it for faster, safer merges",
        path,
    )
    return _BinFile(path)


def _open_files(folder: Path, file: Path | None) -> tuple[dict[str, _File], dict[str, TensorInfo]]:
    """Open the weight files of ``folder`` (or just ``file``): source and info of each tensor.

    Every problem of every file is collected into one CheckpointError.
    """
    index, paths = (None, [file]) if file is not None else _weight_files(folder)
    weight_map = _weight_map(index) if index is not None else None
    if weight_map is not None:
        paths = [folder / f for f in dict.fromkeys(weight_map.values())]
    opened: dict[Path, _File] = {}
    problems: list[str] = []
    for path in paths:
        if not path.is_file():
            count = sum(1 for f in (weight_map or {}).values() if folder / f == path)
            problems.append(f"{index} lists {path.name} ({count} tensors) but the file is missing")
            continue
        try:
            opened[path] = _open_file(path)
        except CheckpointError as exc:
            problems.append(str(exc))
    sources: dict[str, _File] = {}
    infos: dict[str, TensorInfo] = {}
    if weight_map is None:
        for source in opened.values():
            for info in _infos(source):
                sources[info.name], infos[info.name] = source, info
    else:
        held = {path: {i.name: i for i in _infos(source)} for path, source in opened.items()}
        for name, shard in weight_map.items():
            path = folder / shard
            if path in opened and name not in held[path]:
                problems.append(f"{index} maps {name!r} to {shard}, which does not hold it")
            elif path in opened:
                sources[name], infos[name] = opened[path], held[path][name]
        unlisted = sum(len(h) for h in held.values()) - len(infos)
        if unlisted > 0 and not problems:
            logger.warning("%s: %d shard tensors are not in the index; ignored", index, unlisted)
    if problems:
        for source in opened.values():
            source.close()
        raise CheckpointError(join_problems(f"checkpoint {folder} is unusable; {_FIX}", problems))
    return sources, infos


class Checkpoint:
    """A model opened for reading: tensor names, shapes and dtypes known, data read lazily."""

    def __init__(
        self,
        path: Path,
        tensors: dict[str, TensorInfo],
        config: dict[str, Any] | None,
        sources: dict[str, _File],
        *,
        lora: LoraAdapter | None = None,
        ref: str | None = None,
    ) -> None:
        self.path = path
        self.tensors = tensors
        self.config = config
        self.ref = ref if ref is not None else str(path)  # as the user wrote it, for messages
        self.lora = lora
        self._sources = sources
        self._closed = False

    @classmethod
    def open(cls, ref: str | Path) -> Checkpoint:
        """Open model ``ref`` (folder, ``.safetensors`` file, cached hub id, ``model+adapter``).

        Reads only headers and validates them; CheckpointError names each problem found.
        """
        model, adapter = split_lora_ref(ref) if isinstance(ref, str) else (ref, None)
        folder = resolve_model_ref(model)
        config_path = folder / "config.json"
        config = _read_json(config_path, "config.json") if config_path.is_file() else None
        lora = load_lora(adapter) if adapter is not None else None
        as_path = Path(model).expanduser()
        sources, tensors = _open_files(folder, as_path if as_path.is_file() else None)
        if lora is not None:
            problems = lora.problems({n: t.shape for n, t in tensors.items()})
            if problems:
                for source in set(sources.values()):
                    source.close()
                raise CheckpointError(
                    join_problems(f"adapter {lora.path} does not fit model {folder}", problems)
                )
        return cls(folder, tensors, config, sources, lora=lora, ref=str(ref))

    def read(self, name: str) -> torch.Tensor:
        """Tensor ``name``; a zero-copy view of the file where possible: do not modify it."""
        if self._closed:
            raise ValueError(f"checkpoint {self.ref} is closed; read tensors before closing it")
        source = self._sources.get(name)
        if source is None:
            raise CheckpointError(
                f"tensor {name!r} is not in checkpoint {self.ref}; check the name "
                "(Checkpoint.tensors lists them)"
            )
        tensor = source.read(name)
        if self.lora is None:
            return tensor
        replacement = self.lora.replacement(name)
        if replacement is not None:
            tensor = replacement.to(tensor.dtype)
        delta = self.lora.delta(name)
        if delta is None:
            return tensor
        compute = torch.promote_types(tensor.dtype, torch.float32)
        return (tensor.to(compute) + delta.to(compute)).to(tensor.dtype)  # W + s·BA

    def close(self) -> None:
        """Close the files; tensors already read stay valid (each holds its own mapping)."""
        for source in set(self._sources.values()):
            source.close()
        self._closed = True

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Checkpoint({self.ref!r}, {len(self.tensors)} tensors)"
