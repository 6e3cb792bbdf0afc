"""``mergelab merge RECIPE OUT_DIR``: run a recipe, or show its plan with ``--dry-run``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from mergelab.commands import THREADS_HELP
from mergelab.merge import merge, plan_merge
from mergelab.plan import Plan
from mergelab.units import format_size


def register(app: typer.Typer) -> None:
    app.command("merge")(merge_command)


def merge_command(
    recipe: Path = typer.Argument(..., help="Recipe YAML (mergekit-compatible)."),
    out_dir: Path = typer.Argument(..., help="Output folder for the merged model."),
    device: str = typer.Option("cpu", help="Compute device: cpu or cuda."),
    threads: int | None = typer.Option(None, help=THREADS_HELP),
    seed: int | None = typer.Option(None, help="Seed for random methods (DARE, DELLA)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan; read no tensor data."),
    out_shard_size: str = typer.Option("5GB", help="Largest output shard, e.g. 2GB or 500MiB."),
    overwrite: bool = typer.Option(False, help="Replace an existing output folder."),
    allow_nonfinite: bool = typer.Option(
        False, "--allow-nonfinite", help="Merge even when tensors hold NaN or Inf."
    ),
) -> None:
    """Merge the models of RECIPE into OUT_DIR, streaming tensor by tensor."""
    console = Console()
    if dry_run:
        plan = plan_merge(recipe, seed=seed)
        try:
            print_plan(console, plan)
        finally:
            plan.close()
        return
    result = merge(
        recipe,
        out_dir,
        overwrite=overwrite,
        seed=seed,
        device=device,
        threads=threads,
        out_shard_size=out_shard_size,
        allow_nonfinite=allow_nonfinite,
    )
    console.print(
        f"merged {result.tensors} tensors ({format_size(result.bytes)}) into "
        f"[bold]{result.out}[/] in {result.seconds:.1f} s"
    )


def print_plan(console: Console, plan: Plan) -> None:
    """The dry-run report: inputs, jobs per method and position, sizes, peak memory."""
    models = Table(title="inputs", show_lines=False)
    for col in ("model", "tensors", "size"):
        models.add_column(col)
    for ref, ckpt in zip(plan.refs, plan.checkpoints, strict=False):
        size = sum(info.nbytes for info in ckpt.tensors.values())
        models.add_row(ref, str(len(ckpt.tensors)), format_size(size))
    console.print(models)
    jobs = Table(title="output tensors")
    for col in ("tensor", "shape", "dtype", "method", "inputs"):
        jobs.add_column(col)
    shown = plan.jobs if len(plan.jobs) <= 40 else plan.jobs[:20] + plan.jobs[-10:]
    for job in shown:
        inputs = ", ".join(plan.refs[r.model] for r in job.reads())
        jobs.add_row(
            job.name,
            str(list(job.shape)),
            str(job.dtype).removeprefix("torch."),
            job.method,
            inputs,
        )
    console.print(jobs)
    if len(shown) < len(plan.jobs):
        console.print(f"... {len(plan.jobs) - len(shown)} more tensors not shown")
    methods = Counter(job.method for job in plan.jobs)
    console.print(
        f"{len(plan.jobs)} tensors ({', '.join(f'{m} x{n}' for m, n in methods.items())}), "
        f"{plan.layer_count} layers, output {format_size(plan.output_bytes)}, "
        f"estimated peak memory {format_size(plan.peak_memory_estimate())}"
    )
    if plan.vocab is not None:
        console.print(
            f"vocabulary: {plan.vocab.rows} rows ({len(plan.vocab.added_tokens)} tokens added)"
        )
