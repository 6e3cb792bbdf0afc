"""``mergelab methods [NAME]``: every merge method with its parameters, defaults and paper."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from mergelab.errors import ConfigError
from mergelab.methods import MergeMethod, all_methods


def register(app: typer.Typer) -> None:
    app.command("methods")(methods_command)


def methods_command(
    name: str | None = typer.Argument(None, help="Show one method in detail."),
) -> None:
    """List the merge methods (or describe one)."""
    console = Console()
    methods = all_methods()
    if name is not None:
        if name not in methods:
            raise ConfigError(f"unknown method '{name}'; run `mergelab methods` to list them")
        _describe(console, methods[name])
        return
    table = Table(title="merge methods")
    for col in ("method", "base model", "parameters", "summary"):
        table.add_column(col)
    for method in methods.values():
        params = ", ".join(
            _param_text(p.name, p.default, p.per_model, p.required) for p in method.params
        )
        table.add_row(method.name, method.base, params, method.summary)
    console.print(table)
    console.print("per-model parameters are marked *; `mergelab methods NAME` for details")


def _param_text(name: str, default: object, per_model: bool, required: bool) -> str:
    mark = "*" if per_model else ""
    return f"{name}{mark}" if required else f"{name}{mark}={default}"


def _describe(console: Console, method: MergeMethod) -> None:
    console.print(f"[bold]{method.name}[/]: {method.summary}")
    if method.paper:
        console.print(f"paper: {method.paper}")
    most = "any number of" if method.max_models is None else f"at most {method.max_models}"
    console.print(f"base model: {method.base}; models: at least {method.min_models}, {most}")
    table = Table()
    for col in ("parameter", "kind", "default", "per model", "meaning"):
        table.add_column(col)
    for p in method.params:
        default = "required" if p.required else repr(p.default)
        table.add_row(p.name, p.kind, default, "yes" if p.per_model else "", p.doc)
    console.print(table)
