"""The MoE API: a mergekit-moe config in, a Mixtral model folder (and routing report) out.

Flow: plan (headers only, every check) -> router matrices (the base model runs on the
prompts in the hidden modes; nothing else runs) -> the merge engine streams every output
tensor into the sharded writer inside an atomic output folder -> config, tokenizer, recipe
and card -> optionally the routing report, made on the finished model before it is moved
into place, so its summary lands in the card.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from mergelab import engine
from mergelab.checkpoint import TensorInfo
from mergelab.errors import OutputError
from mergelab.merge import check_device
from mergelab.moe.conditioning import condition_number
from mergelab.moe.heldout import held_out_prompts
from mergelab.moe.output import write_model_card, write_support_files
from mergelab.moe.plan import MoePlan, MoeSource, plan_moe
from mergelab.moe.report import RoutingReport, routing_report
from mergelab.moe.router import initial_routers
from mergelab.output_dir import atomic_output_dir, check_output_location
from mergelab.plan import TensorJob
from mergelab.units import parse_size
from mergelab.writer import ShardedSafetensorsWriter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MoeResult:
    """What a finished MoE build produced."""

    out: Path
    experts: int
    tensors: int
    bytes: int
    seconds: float
    condition_numbers: list[float]
    warnings: list[str]
    report: RoutingReport | None


def build_moe(
    config: MoeSource,
    out: str | Path,
    *,
    overwrite: bool = False,
    needs_training: bool = False,
    seed: int | None = None,
    device: str = "cpu",
    threads: int | None = None,
    out_shard_size: str | int | None = "5GB",
    allow_nonfinite: bool = False,
    report: bool = False,
    report_file: str | Path | None = None,
) -> MoeResult:
    """Build the MoE of ``config`` into the folder ``out``, streaming tensor by tensor.

    ``needs_training`` accepts identical experts or prompts (mergekit's
    ``--i-understand-this-is-not-useful-without-training``). ``report`` (or a
    ``report_file`` to write it to as JSON) routes held-out prompts through the result.
    """
    started = time.perf_counter()
    check_device(device)
    shard_bytes = parse_size(out_shard_size) if out_shard_size is not None else None
    plan = plan_moe(config, needs_training=needs_training, seed=seed)
    dest = Path(out)
    try:
        check_output_location(dest, [c.path for c in plan.checkpoints], overwrite=overwrite)
        held = held_out_prompts(plan.config) if report or report_file is not None else None
        names = [e.source_model for e in plan.config.experts]
        initial = initial_routers(plan, device=device)
        routers, warnings = initial.weights, initial.warnings
        if held is None:  # a report repeats them in its summary
            for text in warnings:
                log.warning(text)
        jobs = plan.jobs(routers)
        options = engine.EngineOptions(
            device=device, threads=threads, seed=plan.seed, allow_nonfinite=allow_nonfinite
        )
        routing: RoutingReport | None = None
        with atomic_output_dir(dest, overwrite=overwrite) as tmp:
            _write_weights(plan, jobs, tmp, shard_bytes, options)
            write_support_files(plan, tmp)
            if held is not None:
                routing = routing_report(
                    tmp,
                    held,
                    names=names,
                    device=device,
                    router_warnings=warnings,
                    conditioning=initial.conditioned,
                )
                write_model_card(plan, tmp, routing.summary())
        if routing is not None and report_file is not None:
            _write_report(routing, Path(report_file))
        seconds = time.perf_counter() - started
        log.info("built a %d-expert MoE into %s in %.1f s", len(names), dest, seconds)
        return MoeResult(
            out=dest,
            experts=len(names),
            tensors=len(jobs),
            bytes=plan.output_bytes,
            seconds=seconds,
            condition_numbers=[condition_number(r) for r in routers],
            warnings=warnings,
            report=routing,
        )
    finally:
        plan.close()


def _write_weights(
    plan: MoePlan,
    jobs: list[TensorJob],
    folder: Path,
    shard_bytes: int | None,
    options: engine.EngineOptions,
) -> None:
    entries = [TensorInfo(job.name, job.shape, job.dtype) for job in jobs]
    writer = ShardedSafetensorsWriter(
        folder, entries, max_shard_bytes=shard_bytes, metadata={"format": "pt"}
    )
    try:
        engine.run(jobs, plan.checkpoints, writer, options, model_names=plan.refs)
        writer.finish()
    except BaseException:
        writer.abort()
        raise


def _write_report(routing: RoutingReport, path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        routing.write(path)
    except OSError as exc:
        raise OutputError(
            f"cannot write the routing report {path}: {exc.strerror or exc}; choose another path"
        ) from exc
