"""``mergelab evolve CONFIG OUT_DIR``: search merge recipes; rerun on OUT_DIR to resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import typer
from rich.console import Console
from rich.table import Table

from mergelab.errors import ConfigError
from mergelab.evolve import evolve
from mergelab.evolve.storage import JOURNAL_FILE


def register(app: typer.Typer) -> None:
    app.command("evolve")(evolve_command)


def evolve_command(
    config: Path = typer.Argument(..., help="Evolve config YAML (see docs/evolve.md)."),
    out_dir: Path = typer.Argument(..., help="Folder for the study and results; rerun to resume."),
    trials: int | None = typer.Option(None, help="Trial budget (overrides budget.trials)."),
    seconds: float | None = typer.Option(None, help="Wall-time budget of this run, seconds."),
    workers: int | None = typer.Option(None, help="Trials in parallel (processes or Ray actors)."),
    storage: str | None = typer.Option(
        None, help="Optuna RDB URL shared by several machines, e.g. sqlite:///study.db."
    ),
    study_name: str | None = typer.Option(None, help="Study name inside --storage."),
    backend: str = typer.Option("local", help="Where trials run: local or ray."),
    address: str | None = typer.Option(None, help="Ray cluster address (with --backend ray)."),
    save_best: bool = typer.Option(False, "--save-best", help="Write the chosen model to disk."),
    seed: int | None = typer.Option(None, help="Seed (overrides the config's seed)."),
    threads: int = typer.Option(1, help="Torch threads per worker (add --workers for cores)."),
) -> None:
    """Evolve merge recipes for CONFIG's objectives; results go to OUT_DIR."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the progress bar reports trials
    if backend not in ("local", "ray"):
        raise ConfigError(f"--backend {backend!r} is unknown; use local or ray")
    try:
        result = evolve(
            config,
            out_dir,
            trials=trials,
            seconds=seconds,
            workers=workers,
            storage=storage,
            study_name=study_name,
            backend="ray" if backend == "ray" else "local",
            address=address,
            save_best=save_best,
            seed=seed,
            threads=threads,
        )
    except KeyboardInterrupt:
        Console(stderr=True).print(
            f"[bold red]interrupted:[/] every finished trial is kept in {out_dir}; rerun the "
            "same command to resume"
        )
        raise SystemExit(130) from None
    console = Console(soft_wrap=True)
    stages = result.summary.get("stages")
    if not stages:
        _report(console, result.out_dir, result.summary, storage)
        return
    for name, stage in stages.items():  # ps+dfs: each stage, then the final choice
        console.rule(f"stage {name}")
        _report(console, result.out_dir / stage["dir"], stage, storage)
    chosen = result.summary["chosen"]
    if chosen:
        console.print(f"final model: [bold]{result.out_dir / chosen['recipe']}[/]")


def _report(console: Console, out: Path, summary: dict[str, Any], storage: str | None) -> None:
    counts = summary["trials"]
    console.print(
        f"{counts['counted']} trials ({counts['complete']} complete, {counts['failed']} failed; "
        f"{counts['this_run']} in this run, stopped by {counts['stopped_by']})"
    )
    chosen = summary.get("chosen")
    if not chosen:
        console.print("no trial completed yet; rerun to continue")
        return
    fitness = ", ".join(f"{k} {v:.4g}" for k, v in chosen["fitness"].items())
    console.print(
        f"chosen: trial {chosen['trial']} ({fitness}) -> [bold]{out / chosen['recipe']}[/]"
    )
    if "path" in chosen:  # a data-flow candidate
        console.print(f"path: {' -> '.join(chosen['path'])}")
        diff = chosen["export_max_logit_diff"]
        console.print(f"exported checkpoint vs in-memory path: max logit difference {diff:.2e}")
    rows = {"evolved": chosen["test"], **summary.get("sources", {})}
    if chosen["test"]:
        table = Table(title="test split")
        table.add_column("model")
        columns = [(key, metric) for key, m in chosen["test"].items() for metric in m]
        for key, metric in columns:
            table.add_column(f"{key} {metric}")
        for name, metrics in rows.items():
            cells = [metrics.get(key, {}).get(metric) for key, metric in columns]
            table.add_row(
                Path(name).name or name, *("-" if c is None else f"{c:.3f}" for c in cells)
            )
        console.print(table)
    for warning in summary.get("warnings", []):
        console.print(f"[yellow]warning:[/] {warning}")
    journal = storage or str(out / JOURNAL_FILE)
    console.print(f"dashboard: optuna-dashboard {journal}")
