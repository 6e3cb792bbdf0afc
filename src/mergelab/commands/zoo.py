"""``mergelab zoo``: build the toy world of tiny models, list its models and tasks."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table


def register(app: typer.Typer) -> None:
    """Add the ``zoo`` command group (``build``, ``list``) to ``app``."""
    zoo = typer.Typer(help="The toy world: tiny homologous models trained on a CPU in minutes.")

    @zoo.command("build")
    def build(
        out: Path = typer.Option(Path("zoo"), "--out", help="Folder of the zoo."),
        seed: int = typer.Option(0, "--seed", help="Seed of every model's training."),
        jobs: int = typer.Option(2, "--jobs", help="Parallel training processes."),
        force: bool = typer.Option(False, "--force", help="Rebuild even if up to date."),
    ) -> None:
        """Train the zoo into OUT (a second build with the same seed is instant)."""
        from mergelab.zoo import build_zoo

        manifest = build_zoo(out, seed=seed, jobs=jobs, force=force)
        table = Table(title=f"zoo {manifest.root} (seed {manifest.seed})")
        for column in ("model", "path", "train s", "loss"):
            table.add_column(column)
        for m in manifest.models.values():
            table.add_row(m.name, str(m.path), f"{m.seconds:.1f}", f"{m.loss:.3f}")
        console = Console()
        console.print(table)
        state = "up to date (cached)" if manifest.cached else "built"
        console.print(f"{state}; build time {manifest.seconds:.1f} s")

    @zoo.command("list")
    def list_() -> None:
        """List the zoo's models and tasks."""
        from mergelab.zoo import TASK_DEFS, ZOO_MODELS, task_path

        console = Console()
        models = Table(title="models")
        models.add_column("model")
        models.add_column("description")
        for name, text in ZOO_MODELS.items():
            models.add_row(name, text)
        tasks = Table(title="tasks")
        for column in ("task", "type", "world", "description", "file"):
            tasks.add_column(column)
        for name, task in TASK_DEFS.items():
            tasks.add_row(
                name,
                str(task.spec["type"]),
                task.world,
                str(task.spec["description"]),
                str(task_path(name)),
            )
        console.print(models)
        console.print(tasks)

    app.add_typer(zoo, name="zoo")
