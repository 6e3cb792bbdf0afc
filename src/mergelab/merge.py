"""The merge API: a recipe in, a model folder (or state dict, or live module) out."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mergelab import engine
from mergelab.checkpoint import TensorInfo
from mergelab.errors import ConfigError
from mergelab.output_dir import atomic_output_dir, check_output_location
from mergelab.output_files import write_support_files
from mergelab.plan import Plan, build_plan
from mergelab.recipe import Recipe, load_recipe
from mergelab.units import parse_size
from mergelab.writer import ShardedSafetensorsWriter

log = logging.getLogger(__name__)

RecipeSource = Recipe | dict[str, Any] | str | Path


@dataclass(frozen=True)
class MergeResult:
    """What a finished merge produced."""

    out: Path
    tensors: int
    bytes: int
    seconds: float


def plan_merge(recipe: RecipeSource, *, seed: int | None = None) -> Plan:
    """Validate ``recipe`` against its models' headers and return the plan (reads no data).

    The caller closes the plan (``plan.close()``) when done with it.
    """
    return build_plan(load_recipe(recipe), seed=seed)


def merge(
    recipe: RecipeSource,
    out: str | Path,
    *,
    overwrite: bool = False,
    seed: int | None = None,
    device: str = "cpu",
    threads: int | None = None,
    out_shard_size: str | int | None = "5GB",
    allow_nonfinite: bool = False,
) -> MergeResult:
    """Merge the models of ``recipe`` into the folder ``out``, streaming tensor by tensor.

    The output appears atomically: a failed or interrupted merge leaves nothing behind.
    """
    started = time.perf_counter()
    check_device(device)
    shard_bytes = parse_size(out_shard_size) if out_shard_size is not None else None
    plan = plan_merge(recipe, seed=seed)
    dest = Path(out)
    try:
        check_output_location(dest, [c.path for c in plan.checkpoints], overwrite=overwrite)
        options = _options(plan, device, threads, allow_nonfinite)
        with atomic_output_dir(dest, overwrite=overwrite) as tmp:
            entries = [TensorInfo(job.name, job.shape, job.dtype) for job in plan.jobs]
            writer = ShardedSafetensorsWriter(
                tmp, entries, max_shard_bytes=shard_bytes, metadata={"format": "pt"}
            )
            try:
                engine.run(plan.jobs, plan.checkpoints, writer, options, model_names=plan.refs)
                writer.finish()
            except BaseException:
                writer.abort()
                raise
            write_support_files(plan, tmp)
        seconds = time.perf_counter() - started
        log.info("merged %d tensors into %s in %.1f s", len(plan.jobs), dest, seconds)
        return MergeResult(dest, len(plan.jobs), plan.output_bytes, seconds)
    finally:
        plan.close()


def merge_state_dict(
    recipe: RecipeSource,
    *,
    seed: int | None = None,
    device: str = "cpu",
    threads: int | None = None,
    allow_nonfinite: bool = False,
) -> dict[str, torch.Tensor]:
    """Merge in memory and return the output tensors by name."""
    check_device(device)
    plan = plan_merge(recipe, seed=seed)
    try:
        sink = engine.StateDictSink()
        options = _options(plan, device, threads, allow_nonfinite, show_progress=False)
        engine.run(plan.jobs, plan.checkpoints, sink, options, model_names=plan.refs)
        return sink.tensors
    finally:
        plan.close()


def _options(
    plan: Plan,
    device: str,
    threads: int | None,
    allow_nonfinite: bool,
    *,
    show_progress: bool = True,
) -> engine.EngineOptions:
    return engine.EngineOptions(
        device=device,
        threads=threads,
        seed=plan.seed,
        allow_nonfinite=allow_nonfinite,
        show_progress=show_progress,
    )


def check_device(device: str) -> None:
    """Refuse a device this machine cannot compute on, with the fix."""
    if device == "cpu":
        return
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device '{device}' is not available here; use --device cpu")
        return
    raise ConfigError(f"unknown device '{device}'; use cpu or cuda")
