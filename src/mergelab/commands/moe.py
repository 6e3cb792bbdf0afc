"""``mergelab moe CONFIG OUT_DIR``: a Mixtral MoE from dense fine-tunes (mergekit-moe config)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mergelab.commands import THREADS_HELP
from mergelab.moe import build_moe, plan_moe
from mergelab.moe.plan import MoePlan
from mergelab.units import format_size


def register(app: typer.Typer) -> None:
    app.command("moe")(moe_command)


def moe_command(
    config: Path = typer.Argument(..., help="MoE config YAML (mergekit-moe compatible)."),
    out_dir: Path = typer.Argument(..., help="Output folder for the Mixtral model."),
    report: Path | None = typer.Option(
        None, "--report", help="Write the routing report (held-out prompts) to this JSON file."
    ),
    device: str = typer.Option("cpu", help="Device for the router prompts and the merge."),
    threads: int | None = typer.Option(None, help=THREADS_HELP),
    seed: int | None = typer.Option(None, help="Seed for random gate modes and router noise."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Check the config; build nothing."),
    out_shard_size: str = typer.Option("5GB", help="Largest output shard, e.g. 2GB or 500MiB."),
    overwrite: bool = typer.Option(False, help="Replace an existing output folder."),
    allow_nonfinite: bool = typer.Option(
        False, "--allow-nonfinite", help="Build even when tensors hold NaN or Inf."
    ),
    needs_training: bool = typer.Option(
        False,
        "--i-understand-this-is-not-useful-without-training",
        help="Accept identical experts or identical prompts (the result needs training).",
    ),
) -> None:
    """Build a mixture of experts from fine-tunes of one base, routers set from prompts."""
    console = Console()
    if dry_run:
        plan = plan_moe(config, needs_training=needs_training, seed=seed)
        try:
            print_plan(console, plan)
        finally:
            plan.close()
        return
    result = build_moe(
        config,
        out_dir,
        overwrite=overwrite,
        needs_training=needs_training,
        seed=seed,
        device=device,
        threads=threads,
        out_shard_size=out_shard_size,
        allow_nonfinite=allow_nonfinite,
        report_file=report,
    )
    console.print(
        f"built a {result.experts}-expert MoE ({result.tensors} tensors, "
        f"{format_size(result.bytes)}) into [bold]{escape(str(result.out))}[/] in "
        f"{result.seconds:.1f} s"
    )
    if result.report is not None:
        for line in result.report.summary():
            console.print(escape(line))
        console.print(f"routing report written to {escape(str(report))}")


def print_plan(console: Console, plan: MoePlan) -> None:
    """The dry-run report: experts, output shape and size."""
    table = Table(title=f"experts (gate_mode {plan.config.gate_mode})")
    for col in ("#", "source model", "positive", "negative", "residual scale"):
        table.add_column(col)
    for i, e in enumerate(plan.config.experts):
        scale = e.residual_scale if e.residual_scale is not None else 1.0
        table.add_row(
            str(i),
            escape(e.source_model),
            str(len(e.positive_prompts or [])),
            str(len(e.negative_prompts or [])),
            f"{scale:g}",
        )
    console.print(table)
    console.print(
        f"Mixtral: {plan.layers} layers, {len(plan.experts)} experts, "
        f"{plan.config.experts_per_token} per token, {len(plan.tensors)} tensors, "
        f"{str(plan.dtype).removeprefix('torch.')}, output {format_size(plan.output_bytes)}"
    )
