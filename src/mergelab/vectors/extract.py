"""Extraction: ``tau = theta_ft - theta_base`` into a ``.tv`` artifact, or a PEFT LoRA adapter.

Task vectors as in Ilharco et al. 2023 (https://arxiv.org/abs/2212.04089). Both outputs are
planned from the checkpoints' headers, streamed through :func:`mergelab.engine.run` (one
tensor of each model in memory at a time) into streaming safetensors writers, and appear
atomically (a failed run leaves nothing). ``vector.json`` is written last.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch
from pydantic import ValidationError

import mergelab
from mergelab import engine
from mergelab.checkpoint import Checkpoint, TensorInfo
from mergelab.errors import ConfigError, VectorError, join_problems
from mergelab.merge import check_device
from mergelab.output_dir import atomic_output_dir, check_output_location
from mergelab.plan import TensorJob
from mergelab.units import parse_size
from mergelab.vectors import peft_adapter
from mergelab.vectors.encode import Writers, adapter_entries, jobs_for, plan_layout
from mergelab.vectors.fingerprint import fingerprint
from mergelab.vectors.format import (
    META_FILE,
    PEFT_DIR,
    SUFFIX,
    ModelInfo,
    Stored,
    VectorMeta,
    VectorRecipe,
    storage_infos,
)
from mergelab.writer import ShardedSafetensorsWriter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExtractResult:
    """What an extraction wrote: where, how many tensors, and the size against dense."""

    out: Path
    tensors: int
    stored_bytes: int
    dense_bytes: int  # the same vector stored densely in the value dtype
    seconds: float

    @property
    def ratio(self) -> float:
        return self.stored_bytes / self.dense_bytes if self.dense_bytes else 0.0


def make_recipe(
    *,
    dtype: str = "float32",
    sparsify: str | None = None,
    density: float | None = None,
    rank: int | None = None,
    seed: int = 0,
) -> VectorRecipe:
    """A validated extraction recipe; ConfigError naming the bad option otherwise."""
    if density is not None and rank is not None:
        raise ConfigError("give --density or --rank, not both; a vector is sparse or low-rank")
    if density is not None and not 0.0 < density <= 1.0:
        raise ConfigError(f"density {density} is outside (0, 1]; give e.g. --density 0.1")
    if rank is not None and rank < 1:
        raise ConfigError(f"rank {rank} is not positive; give e.g. --rank 8")
    if sparsify is not None and sparsify not in ("magnitude", "dare"):
        raise ConfigError(f"unknown sparsify mode {sparsify!r}; choose magnitude or dare")
    if sparsify is not None and density is None:
        raise ConfigError(f"--sparsify {sparsify} needs --density (the fraction kept)")
    if density is not None and sparsify is None:
        sparsify = "magnitude"
    try:
        return VectorRecipe.model_validate(
            {"dtype": dtype, "sparsify": sparsify, "density": density, "rank": rank, "seed": seed}
        )
    except ValidationError:
        raise ConfigError(
            f"value dtype {dtype!r} is not supported; choose float32, float64, bfloat16 or float16"
        ) from None


def open_pair(finetune: str | Path, base: str | Path) -> tuple[Checkpoint, Checkpoint]:
    """(base, fine-tune) checkpoints, or VectorError when they differ in tensors or shapes."""
    base_ckpt = Checkpoint.open(str(base))
    try:
        ft_ckpt = Checkpoint.open(str(finetune))
    except BaseException:
        base_ckpt.close()
        raise
    problems = architecture_problems(ft_ckpt.tensors, base_ckpt.tensors, str(finetune), str(base))
    if problems:
        base_ckpt.close()
        ft_ckpt.close()
        raise VectorError(
            join_problems(
                f"{finetune} is not a fine-tune of {base} (different architecture)", problems
            )
        )
    return base_ckpt, ft_ckpt


def architecture_problems(
    tensors: Mapping[str, TensorInfo],
    base: Mapping[str, TensorInfo],
    what: str,
    base_name: str,
) -> list[str]:
    """Missing tensors and shape mismatches (at most three named, then a count)."""
    found: list[str] = []
    for name, info in tensors.items():
        other = base.get(name)
        if other is None:
            found.append(f"{what} has {name}, {base_name} does not")
        elif other.shape != info.shape:
            found.append(
                f"{name} is {list(info.shape)} in {what}, {list(other.shape)} in {base_name}"
            )
    found += [f"{base_name} has {n}, {what} does not" for n in base if n not in tensors]
    if len(found) > 3:
        found = [*found[:3], f"and {len(found) - 3} more differences"]
    return found


def architecture_name(ckpt: Checkpoint) -> str:
    """``LlamaForCausalLM`` (from config.json), else the model type, else ``unknown``."""
    config = ckpt.config or {}
    names = config.get("architectures")
    if isinstance(names, list) and names and isinstance(names[0], str):
        return names[0]
    model_type = config.get("model_type")
    return model_type if isinstance(model_type, str) else "unknown"


def extract_vector(
    finetune: str | Path,
    base: str | Path,
    out: str | Path,
    *,
    recipe: VectorRecipe | None = None,
    name: str | None = None,
    overwrite: bool = False,
    device: str = "cpu",
    threads: int | None = None,
    out_shard_size: str | int | None = "5GB",
) -> ExtractResult:
    """Write the task vector ``finetune - base`` to the artifact folder ``out`` (``NAME.tv``).

    With ``recipe.rank`` the folder also holds the PEFT LoRA adapter in ``peft/``.
    """
    started = time.perf_counter()
    check_device(device)
    recipe = recipe or VectorRecipe()
    shard_bytes = parse_size(out_shard_size) if out_shard_size is not None else None
    dest = Path(out)
    base_ckpt, ft_ckpt = open_pair(finetune, base)
    try:
        infos = base_ckpt.tensors
        layout = plan_layout(infos, recipe)
        check_output_location(dest, [base_ckpt.path, ft_ckpt.path], overwrite=overwrite)
        base_fp, ft_fp = fingerprint(base_ckpt), fingerprint(ft_ckpt)
        entries = [i for n, s in layout.items() for i in storage_infos(n, s, recipe.value_dtype)]
        with atomic_output_dir(dest, overwrite=overwrite) as tmp:
            artifact = ShardedSafetensorsWriter(
                tmp, entries, max_shard_bytes=shard_bytes, metadata={"format": "pt"}
            )
            adapter_layout = peft_adapter.plan_adapter(infos) if recipe.rank else None
            try:
                with _adapter_writer(tmp / PEFT_DIR, infos, adapter_layout, recipe) as adapter:
                    writers = Writers(artifact, adapter, adapter_layout)
                    _run(infos, layout, recipe, writers, [base_ckpt, ft_ckpt], device, threads)
                artifact.finish()
            except BaseException:
                artifact.abort()
                raise
            if adapter_layout is not None and recipe.rank is not None:
                peft_adapter.write_config(tmp / PEFT_DIR, adapter_layout, recipe.rank, str(base))
            meta = VectorMeta(
                name=name or dest.name.removesuffix(SUFFIX),
                created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                mergelab_version=mergelab.__version__,
                base=ModelInfo(ref=str(base), fingerprint=base_fp),
                source=ModelInfo(ref=str(finetune), fingerprint=ft_fp),
                architecture=architecture_name(base_ckpt),
                recipe=recipe,
                tensors=layout,
                peft=PEFT_DIR if adapter_layout is not None else None,
            )
            (tmp / META_FILE).write_text(meta.model_dump_json(indent=2) + "\n", encoding="utf-8")
        result = ExtractResult(
            dest,
            len(layout),
            artifact.total_bytes,
            sum(_dense_bytes(s, recipe.value_dtype) for s in layout.values()),
            time.perf_counter() - started,
        )
        log.info(
            "extracted %d tensors into %s (%.1f%% of dense) in %.1f s",
            result.tensors,
            dest,
            100 * result.ratio,
            result.seconds,
        )
        return result
    finally:
        base_ckpt.close()
        ft_ckpt.close()


def extract_lora(
    finetune: str | Path,
    base: str | Path,
    out: str | Path,
    *,
    rank: int,
    dtype: str = "float32",
    overwrite: bool = False,
    device: str = "cpu",
    threads: int | None = None,
) -> ExtractResult:
    """Write a PEFT LoRA adapter of rank ``rank`` approximating ``finetune - base`` to ``out``."""
    started = time.perf_counter()
    check_device(device)
    recipe = make_recipe(dtype=dtype, rank=rank)
    dest = Path(out)
    base_ckpt, ft_ckpt = open_pair(finetune, base)
    try:
        infos = base_ckpt.tensors
        layout = plan_layout(infos, recipe)
        check_output_location(dest, [base_ckpt.path, ft_ckpt.path], overwrite=overwrite)
        adapter_layout = peft_adapter.plan_adapter(infos)
        with atomic_output_dir(dest, overwrite=overwrite) as tmp:
            with _adapter_writer(tmp, infos, adapter_layout, recipe) as adapter:
                writers = Writers(None, adapter, adapter_layout)
                _run(infos, layout, recipe, writers, [base_ckpt, ft_ckpt], device, threads)
            peft_adapter.write_config(tmp, adapter_layout, rank, str(base))
            stored = (tmp / peft_adapter.WEIGHTS_FILE).stat().st_size
        dense = sum(infos[n].numel * recipe.value_dtype.itemsize for n in adapter_layout.lora)
        return ExtractResult(
            dest, len(adapter_layout.lora), stored, dense, time.perf_counter() - started
        )
    finally:
        base_ckpt.close()
        ft_ckpt.close()


class _RoutingSink:
    """Hands each job's output to the handler that stores it."""

    def __init__(self, handlers: dict[str, Callable[[torch.Tensor], None]]) -> None:
        self._handlers = handlers

    def write(self, name: str, tensor: torch.Tensor) -> None:
        self._handlers[name](tensor)


def _run(
    infos: Mapping[str, TensorInfo],
    layout: dict[str, Stored],
    recipe: VectorRecipe,
    writers: Writers,
    sources: list[Checkpoint],
    device: str,
    threads: int | None,
) -> None:
    jobs: list[TensorJob]
    jobs, handlers = jobs_for(infos, layout, recipe, writers)
    options = engine.EngineOptions(device=device, threads=threads, seed=recipe.seed)
    engine.run(jobs, sources, _RoutingSink(handlers), options, model_names=["base", "fine-tune"])


@contextmanager
def _adapter_writer(
    folder: Path,
    infos: Mapping[str, TensorInfo],
    layout: peft_adapter.AdapterLayout | None,
    recipe: VectorRecipe,
) -> Iterator[ShardedSafetensorsWriter | None]:
    """The adapter's writer (None without an adapter): finished on success, else aborted.

    The writer names a single shard ``model.safetensors``; PEFT wants
    ``adapter_model.safetensors``, so the file is renamed after finishing.
    """
    if layout is None or recipe.rank is None:
        yield None
        return
    entries = adapter_entries(infos, layout, recipe.rank, recipe.value_dtype)
    writer = ShardedSafetensorsWriter(
        folder, entries, max_shard_bytes=None, metadata={"format": "pt"}
    )
    try:
        yield writer
        writer.finish()
    except BaseException:
        writer.abort()
        raise
    os.replace(folder / "model.safetensors", folder / peft_adapter.WEIGHTS_FILE)


def _dense_bytes(stored: Stored, dtype: torch.dtype) -> int:
    return stored.numel * dtype.itemsize
