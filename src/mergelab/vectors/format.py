"""The task-vector artifact format: a ``NAME.tv`` folder of safetensors data + ``vector.json``.

A task vector is ``tau = theta_ft - theta_base`` (Ilharco et al. 2023, "Editing Models with
Task Arithmetic", https://arxiv.org/abs/2212.04089). mergelab stores it as a folder::

    NAME.tv/
      vector.json                   metadata (this module's VectorMeta), written last
      model.safetensors             stored tensors (or model-0000k-of-0000n + index.json)
      peft/                         low-rank vectors only: the same factors as a PEFT LoRA adapter

Each tensor ``W`` of the model is stored in one of four kinds, recorded in ``vector.json``:

- ``dense``: ``W`` itself, the full (possibly sparsified, zero-filled) delta;
- ``coo``: ``W::indices`` (k,) int32 (int64 above 2^31 entries), flat row-major positions in
  ascending order, and ``W::values`` (k,);
- ``bitmask``: ``W::mask`` (ceil(n/8),) uint8, bit ``i % 8`` (least significant first) of byte
  ``i // 8`` set when flat entry ``i`` is kept, and ``W::values`` (k,) in flat order;
- ``lowrank``: ``W::A`` (r, in) and ``W::B`` (out, r) with ``delta = B @ A``.

A sparsified tensor is stored in whichever of dense / coo / bitmask takes the fewest bytes;
the kind changes the size, never the values. Values use the artifact's ``dtype`` (float32
unless chosen otherwise), so all kinds of one artifact share one value dtype.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from mergelab.checkpoint import TensorInfo

FORMAT: Literal["mergelab-task-vector"] = "mergelab-task-vector"
VERSION = 1
META_FILE = "vector.json"
PEFT_DIR = "peft"
SUFFIX = ".tv"

StorageKind = Literal["dense", "coo", "bitmask", "lowrank"]
SparsifyMode = Literal["magnitude", "dare"]

VALUE_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float64": torch.float64,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelInfo(_Strict):
    """A model the vector was made from: as the user named it, and its fingerprint."""

    ref: str
    fingerprint: str


class VectorRecipe(_Strict):
    """How the vector was made: value dtype and compression."""

    dtype: Literal["float32", "float64", "bfloat16", "float16"] = "float32"
    sparsify: SparsifyMode | None = None
    density: float | None = Field(default=None, gt=0.0, le=1.0)
    rank: int | None = Field(default=None, ge=1)
    seed: int = 0

    @property
    def value_dtype(self) -> torch.dtype:
        return VALUE_DTYPES[self.dtype]

    @property
    def compression(self) -> str:
        if self.rank is not None:
            return f"lowrank r={self.rank}"
        if self.density is not None and self.density < 1.0:
            return f"{self.sparsify} density={self.density:g}"
        return "none"


class Stored(_Strict):
    """How one model tensor is stored: its dense shape, kind, kept count or rank."""

    shape: tuple[int, ...]
    kind: StorageKind
    count: int | None = Field(default=None, ge=0)  # coo / bitmask: kept entries k
    rank: int | None = Field(default=None, ge=1)  # lowrank: r

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


class VectorMeta(_Strict):
    """Everything in ``vector.json``."""

    format: Literal["mergelab-task-vector"] = FORMAT
    version: int = VERSION
    name: str
    created: str
    mergelab_version: str
    base: ModelInfo
    source: ModelInfo
    architecture: str
    recipe: VectorRecipe
    tensors: dict[str, Stored]
    peft: str | None = None  # sub-folder holding the PEFT adapter, when there is one


def index_dtype(numel: int) -> torch.dtype:
    """int32 flat indices when they fit, else int64."""
    return torch.int32 if numel <= torch.iinfo(torch.int32).max else torch.int64


def storage_infos(name: str, stored: Stored, dtype: torch.dtype) -> list[TensorInfo]:
    """The safetensors entries that hold model tensor ``name``."""
    if stored.kind == "dense":
        return [TensorInfo(name, stored.shape, dtype)]
    if stored.kind == "lowrank":
        out, inp = stored.shape
        r = stored.rank or 0
        return [
            TensorInfo(f"{name}::A", (r, inp), dtype),
            TensorInfo(f"{name}::B", (out, r), dtype),
        ]
    count = stored.count or 0
    values = TensorInfo(f"{name}::values", (count,), dtype)
    if stored.kind == "coo":
        return [TensorInfo(f"{name}::indices", (count,), index_dtype(stored.numel)), values]
    return [TensorInfo(f"{name}::mask", (mask_bytes(stored.numel),), torch.uint8), values]


def mask_bytes(numel: int) -> int:
    return (numel + 7) // 8


def stored_bytes(name: str, stored: Stored, dtype: torch.dtype) -> int:
    return sum(info.nbytes for info in storage_infos(name, stored, dtype))
