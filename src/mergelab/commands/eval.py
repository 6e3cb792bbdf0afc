"""``mergelab eval MODEL --task TASK``: score a saved model on a task split."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from mergelab.eval.evaluate import EvalResult, evaluate_model


def register(app: typer.Typer) -> None:
    """Add the ``eval`` command to ``app``."""
    app.command("eval")(eval_command)


def eval_command(
    model: Path = typer.Argument(..., help="A saved model folder (config, weights, tokenizer)."),
    task: str = typer.Option(..., "--task", "-t", help="A zoo task name or a task .yaml path."),
    split: str = typer.Option("fitness", "--split", "-s", help="Split to score: fitness or test."),
    limit: int | None = typer.Option(None, "--limit", "-n", help="Score only the first N items."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    batch_size: int | None = typer.Option(
        None, "--batch-size", "-b", help="Rows per forward pass (default: sized from the model)."
    ),
    device: str = typer.Option("cpu", "--device", help="Torch device, e.g. cpu or cuda."),
    threads: int | None = typer.Option(
        None, "--threads", help="Torch CPU threads while scoring (1 is fastest on tiny models)."
    ),
) -> None:
    """Score MODEL on a task: exact match, multiple choice or perplexity."""
    start = time.perf_counter()
    result = evaluate_model(
        model,
        task,
        split=split,
        limit=limit,
        batch_size=batch_size,
        device=device,
        threads=threads,
    )
    total = time.perf_counter() - start
    if as_json:
        typer.echo(json.dumps(result.model_dump()))
        return
    console = Console(highlight=False, soft_wrap=True)
    console.print(f"{result.model} on {result.task} ({result.split}, n={result.n})")
    console.print(_table(result))
    console.print(f"scored in {result.seconds:.2f} s ({total:.2f} s with loading)")


def _table(result: EvalResult) -> Table:
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in result.metrics.items():
        table.add_row(name, f"{value:.4f}")
    return table
