"""Extraction as engine jobs: per model tensor, ``delta = ft - base``, compressed, then stored.

The engine yields one tensor per job, so a job whose tensor is stored as several entries
returns them packed, and the job's handler unpacks them for the writers:

- ``dense``: the delta (sparsified and zero-filled when a density is set), value dtype;
- ``coo``: float64 (2, k), row 0 the flat indices, row 1 the values (exact: indices < 2^53,
  and values computed in float32 or float64);
- ``bitmask``: float64 (ceil(n/8) + k,), the mask bytes then the values;
- ``lowrank``: ``[A | B^T]`` (r, in + out), value dtype (see :mod:`mergelab.vectors.lowrank`).

Jobs read the base as model 0 and the fine-tune as model 1. DARE draws come from a generator
seeded per tensor from ``(seed, tensor name)`` (:func:`mergelab.engine.tensor_seed`), so a
vector does not depend on job order or thread count.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from mergelab.checkpoint import TensorInfo
from mergelab.engine import Sink, tensor_seed
from mergelab.errors import ConfigError
from mergelab.plan import InputRef, TensorJob
from mergelab.vectors import lowrank, sparse
from mergelab.vectors.format import Stored, VectorRecipe, index_dtype, mask_bytes, stored_bytes
from mergelab.vectors.peft_adapter import PREFIX, AdapterLayout, lora_infos

Handler = Callable[[torch.Tensor], None]


def plan_layout(infos: Mapping[str, TensorInfo], recipe: VectorRecipe) -> dict[str, Stored]:
    """How each tensor will be stored; ConfigError when ``rank`` exceeds a matrix."""
    if recipe.rank is not None:
        check_rank(infos, recipe.rank)
    dtype = recipe.value_dtype
    layout: dict[str, Stored] = {}
    for name, info in infos.items():
        if recipe.rank is not None and len(info.shape) == 2:
            layout[name] = Stored(shape=info.shape, kind="lowrank", rank=recipe.rank)
        elif recipe.density is not None and recipe.density < 1.0:
            k = sparse.kept_count(info.numel, recipe.density)
            options = [Stored(shape=info.shape, kind=kind, count=k) for kind in ("coo", "bitmask")]
            options.append(Stored(shape=info.shape, kind="dense", count=k))
            layout[name] = min(options, key=lambda s: stored_bytes(name, s, dtype))
        else:
            layout[name] = Stored(shape=info.shape, kind="dense")
    return layout


def check_rank(infos: Mapping[str, TensorInfo], rank: int) -> None:
    """ConfigError naming the smallest matrix when ``rank`` exceeds its smaller side."""
    matrices = [info for info in infos.values() if len(info.shape) == 2]
    if not matrices:
        raise ConfigError("--rank needs 2-D weight matrices, and this model has none; drop --rank")
    smallest = min(matrices, key=lambda i: min(i.shape))
    most = min(smallest.shape)
    if rank > most:
        raise ConfigError(
            f"rank {rank} is larger than matrix {smallest.name} {list(smallest.shape)} allows "
            f"(at most {most}); choose --rank <= {most}"
        )


@dataclass(frozen=True)
class Writers:
    """Where stored entries go: the artifact, the PEFT adapter, or both."""

    artifact: Sink | None
    adapter: Sink | None
    adapter_layout: AdapterLayout | None


def jobs_for(
    infos: Mapping[str, TensorInfo],
    layout: Mapping[str, Stored],
    recipe: VectorRecipe,
    writers: Writers,
) -> tuple[list[TensorJob], dict[str, Handler]]:
    """The extraction jobs and, per job name, the handler that stores its output."""
    jobs: list[TensorJob] = []
    handlers: dict[str, Handler] = {}
    adapter = writers.adapter_layout
    for name, stored in layout.items():
        in_adapter = adapter is not None and name in adapter.lora
        if writers.artifact is None and not in_adapter:
            continue
        shape, dtype = _packed(stored, recipe.value_dtype)
        refs = (InputRef(0, name), InputRef(1, name))
        combine = _encoder(name, stored, recipe)
        jobs.append(
            TensorJob(name, shape, dtype, "task_vector", refs[0], refs[1:], {}, None, combine)
        )
        handlers[name] = _handler(name, stored, recipe, writers)
    if adapter is not None and writers.adapter is not None:
        out = writers.adapter
        for name in adapter.saved:
            key = PREFIX + name
            info = infos[name]
            jobs.append(
                TensorJob(
                    key,
                    info.shape,
                    recipe.value_dtype,
                    "peft_copy",
                    None,
                    (InputRef(1, name),),
                    {},
                    combine=lambda ts: ts[0],  # the fine-tune's own values
                )
            )
            handlers[key] = _writes(out, key)
    return jobs, handlers


def adapter_entries(
    infos: Mapping[str, TensorInfo], adapter: AdapterLayout, rank: int, dtype: torch.dtype
) -> list[TensorInfo]:
    """Every entry of ``adapter_model.safetensors``, for the writer's plan."""
    entries: list[TensorInfo] = []
    for name, (module, embedding) in adapter.lora.items():
        entries.extend(lora_infos(module, embedding, infos[name].shape, rank, dtype))
    entries += [TensorInfo(PREFIX + n, infos[n].shape, dtype) for n in adapter.saved]
    return entries


def _writes(sink: Sink, key: str) -> Handler:
    return lambda tensor: sink.write(key, tensor)


def _packed(stored: Stored, dtype: torch.dtype) -> tuple[tuple[int, ...], torch.dtype]:
    if stored.kind == "dense":
        return stored.shape, dtype
    if stored.kind == "lowrank":
        out, inp = stored.shape
        return (stored.rank or 0, inp + out), dtype
    k = stored.count or 0
    if stored.kind == "coo":
        return (2, k), torch.float64
    return (mask_bytes(stored.numel) + k,), torch.float64


def _encoder(
    name: str, stored: Stored, recipe: VectorRecipe
) -> Callable[[list[torch.Tensor]], torch.Tensor]:
    seed = tensor_seed(recipe.seed, name, 1)
    density = recipe.density if recipe.density is not None and recipe.density < 1.0 else None

    def encode(tensors: list[torch.Tensor]) -> torch.Tensor:
        base, ft = tensors
        delta = ft - base  # tau = theta_ft - theta_base, shape of the tensor
        if stored.kind == "lowrank":
            return lowrank.pack(*lowrank.factors(delta, stored.rank or 1))
        if density is None or recipe.sparsify is None:
            return delta
        gen = torch.Generator(device=delta.device).manual_seed(seed)
        indices, values = sparse.select(delta, density, recipe.sparsify, gen)
        if stored.kind == "dense":
            return sparse.scatter(indices, values, stored.shape)
        if stored.kind == "coo":
            return torch.stack([indices.double(), values.double()])  # (2, k)
        bits = sparse.pack_bits(indices, stored.numel).double()
        return torch.cat([bits, values.double()])  # (ceil(n/8) + k,)

    return encode


def _handler(name: str, stored: Stored, recipe: VectorRecipe, writers: Writers) -> Handler:
    dtype = recipe.value_dtype
    art = writers.artifact

    def store(packed: torch.Tensor) -> None:
        if stored.kind == "lowrank":
            a, b = lowrank.unpack(packed, stored.shape[1])
            if art is not None:
                art.write(f"{name}::A", a)
                art.write(f"{name}::B", b)
            _adapter_write(name, a, b, writers)
        elif art is None:
            return
        elif stored.kind == "dense":
            art.write(name, packed)
        elif stored.kind == "coo":
            art.write(f"{name}::indices", packed[0].to(index_dtype(stored.numel)))
            art.write(f"{name}::values", packed[1].to(dtype))
        else:
            m = mask_bytes(stored.numel)
            art.write(f"{name}::mask", packed[:m].to(torch.uint8))
            art.write(f"{name}::values", packed[m:].to(dtype))

    return store


def _adapter_write(name: str, a: torch.Tensor, b: torch.Tensor, writers: Writers) -> None:
    layout, out = writers.adapter_layout, writers.adapter
    if layout is None or out is None or name not in layout.lora:
        return
    module, embedding = layout.lora[name]
    key_a, key_b = lora_infos(module, embedding, (b.shape[0], a.shape[1]), a.shape[0], a.dtype)
    if embedding:  # PEFT adds (lora_B @ lora_A)^T: lora_A = B^T (r, vocab), lora_B = A^T
        out.write(key_a.name, b.T.contiguous())
        out.write(key_b.name, a.T.contiguous())
    else:
        out.write(key_a.name, a)
        out.write(key_b.name, b)
