"""``mergelab demo``: the toy world end to end (what ``make demo`` runs)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from mergelab.demo import COLUMNS, run_demo


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)


def demo_command(
    zoo: Path = typer.Option(Path("zoo"), help="Where the toy zoo is built (cached)."),
    out: Path = typer.Option(Path("demo-out"), help="Where the chart and report go."),
    limit: int | None = typer.Option(None, help="Score only the first N test items."),
    jobs: int = typer.Option(2, help="Parallel training processes for the zoo build."),
) -> None:
    """Build the toy world, score its models and hand merges, print the table."""
    console = Console()
    result = run_demo(zoo, out, limit=limit, jobs=jobs)
    table = Table(title="toy world, test split (the paper's flagship table, in miniature)")
    table.add_column("model")
    for label, _, _ in COLUMNS:
        table.add_column(label, justify="right")
    for row in result.rows:
        style = "bold" if row.kind == "merge" else None
        table.add_row(row.name, *(f"{row.scores[c]:.2f}" for c, _, _ in COLUMNS), style=style)
    console.print(table)
    console.print(
        f"best hand merge vs best source on {COLUMNS[0][0]}: {result.best_merge_gain():+.2f}"
    )
    if result.chart is not None:
        console.print(f"chart: {result.chart}")
    console.print(f"report: {result.report}")
