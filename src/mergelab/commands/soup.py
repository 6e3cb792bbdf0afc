"""``mergelab soup MODELS... --eval TASK [--greedy]``: uniform or greedy model soup."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from mergelab.soup import LOWER_IS_BETTER, SoupResult, SoupStep, save_soup, task_soup


def register(app: typer.Typer) -> None:
    app.command("soup")(soup_command)


def soup_command(
    models: list[str] = typer.Argument(..., help="Fine-tunes of one base to average."),
    task: str = typer.Option(..., "--eval", help="Task that scores the soups (name or YAML)."),
    greedy: bool = typer.Option(
        False, "--greedy/--uniform", help="Greedy soup (keep a model only if it helps)."
    ),
    split: str = typer.Option("fitness", help="Held-out split the soup is chosen on."),
    limit: int | None = typer.Option(None, help="Score only the first N items of the split."),
    metric: str | None = typer.Option(None, help="Metric to use (default: the task's primary)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write the final soup here."),
    overwrite: bool = typer.Option(False, help="Replace an existing output folder."),
    device: str = typer.Option("cpu", help="Device the soups are evaluated on."),
) -> None:
    """Average MODELS into a soup scored on TASK; --greedy adds them best first while it helps."""
    console = Console()

    def show(step: SoupStep) -> None:
        verdict = "[green]kept[/]" if step.accepted else "[red]dropped[/]"
        console.print(
            f"step {step.step}: {step.model} (alone {step.model_score:.4f}) -> soup "
            f"{step.soup_score:.4f}, {verdict}, {step.size} ingredient(s)"
        )

    result = task_soup(
        models,
        task,
        greedy=greedy,
        split=split,
        limit=limit,
        metric=metric,
        device=device,
        on_step=show,
    )
    console.print(_table(result, split))
    if out is not None:
        dest = save_soup(result, out, overwrite=overwrite)
        console.print(f"wrote the soup to [bold]{dest}[/]")


def _table(result: SoupResult, split: str) -> Table:
    table = Table(title=f"{result.kind} soup, {result.metric} on the {split} split")
    for col in ("step", "model", "alone", "soup", "kept", "size"):
        table.add_column(col)
    for s in result.steps:
        table.add_row(
            str(s.step),
            s.model,
            f"{s.model_score:.4f}",
            f"{s.soup_score:.4f}",
            "yes" if s.accepted else "no",
            str(s.size),
        )
    pick = min if result.metric in LOWER_IS_BETTER else max
    table.caption = (
        f"final soup: {len(result.ingredients)} models, {result.metric} {result.score:.4f} "
        f"(best single model {pick(result.scores.values()):.4f})"
    )
    return table
