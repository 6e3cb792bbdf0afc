"""``mergelab analyze BASE FT1 FT2 ... -o REPORT_DIR``: task-vector diagnostics and a reading."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from mergelab.analyze import Analysis, analyze, reading


def register(app: typer.Typer) -> None:
    app.command("analyze")(analyze_command)


def analyze_command(
    base: str = typer.Argument(..., help="The base model."),
    finetunes: list[str] = typer.Argument(..., help="Fine-tunes of BASE to compare."),
    out: Path = typer.Option(..., "--out", "-o", help="Report folder (JSON, reading, PNGs)."),
    eps: float = typer.Option(1e-6, help="|tau| below this counts as unchanged."),
    top_k: float = typer.Option(0.1, help="Fraction of entries in each top-k set."),
    overwrite: bool = typer.Option(False, help="Replace an existing report folder."),
) -> None:
    """Measure how FINETUNES change BASE and predict how they would merge."""
    analysis = analyze(base, finetunes, out, eps=eps, top_k=top_k, overwrite=overwrite)
    console = Console()
    console.print(_table(analysis))
    console.print(reading(analysis))
    console.print(f"wrote the report to [bold]{out}[/]")


def _table(analysis: Analysis) -> Table:
    table = Table(title=f"task vectors against {analysis.base} (whole model)")
    for col in ("vector", "norm", "relative change", "sparsity"):
        table.add_column(col)
    for model in analysis.models:
        row = analysis.total["models"][model]
        table.add_row(
            model,
            f"{row['norm']:.4g}",
            _fmt(row["relative_change"]),
            _fmt(row["sparsity"]),
        )
    for a, b in analysis.pairs:
        pair = analysis.total["pairs"][f"{a} vs {b}"]
        table.add_row(
            f"{a} vs {b}",
            f"cos {_fmt(pair['cosine'])}",
            f"conflict {_fmt(pair['sign_conflict'])}",
            f"top-k overlap {_fmt(pair['topk_jaccard'])}",
        )
    return table


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
