"""The ``mergelab`` command: one typer app; each command group lives in ``mergelab.commands``.

This is the only module that configures logging and progress output. Errors derived from
:class:`~mergelab.errors.MergelabError` are printed as one line (the traceback only under
``-v``) and end the process with the error's exit code.
"""

from __future__ import annotations

import logging
import sys
from importlib import import_module

import click
import typer
from rich.console import Console
from transformers.utils import logging as hf_logging

from mergelab.errors import MergelabError
from mergelab.progress import set_progress_enabled

app = typer.Typer(
    name="mergelab",
    help="Build new language models from existing ones without training.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Command modules, each exposing ``register(app)``; a module that is not there yet is skipped.
COMMAND_MODULES = (
    "merge",
    "methods",
    "zoo",
    "eval",
    "demo",
    "evolve",
    "moe",
    "vector",
    "soup",
    "analyze",
)

_verbosity = {"level": 0}
_INTERRUPTED = "[bold red]interrupted:[/] stopped by the user; no partial output was kept"


@app.callback()
def _configure(
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More detail; -vv debug."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only errors; no progress bars."),
) -> None:
    level = logging.ERROR if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", force=True)
    if not verbose:
        logging.getLogger("transformers").setLevel(logging.ERROR)
        hf_logging.disable_progress_bar()  # mergelab's own bars say what is going on
    _verbosity["level"] = -1 if quiet else verbose
    set_progress_enabled(not quiet and sys.stderr.isatty())


def _register_commands() -> None:
    for name in COMMAND_MODULES:
        try:
            module = import_module(f"mergelab.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"mergelab.commands.{name}":
                continue
            raise
        module.register(app)


_GLOBAL_FLAGS = ("-v", "-vv", "-vvv", "--verbose", "-q", "--quiet")


def _global_flags_first(argv: list[str]) -> list[str]:
    """Let -v/-q stand anywhere on the command line (``mergelab merge r.yml out -v``)."""
    flags = [a for a in argv if a in _GLOBAL_FLAGS]
    return flags + [a for a in argv if a not in _GLOBAL_FLAGS]


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script."""
    _register_commands()
    argv = _global_flags_first(list(sys.argv[1:] if argv is None else argv))
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        code = app(args=argv, standalone_mode=False)
    except MergelabError as exc:
        if _verbosity["level"] > 0:
            err.print_exception()
        err.print(f"[bold red]error:[/] {exc}", markup=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        code = 130
    except click.ClickException as exc:  # usage errors: bad option, missing argument
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        sys.exit(1)
    if isinstance(code, int) and code != 0:  # typer returns exit codes when not standalone
        if code == 130:
            err.print(_INTERRUPTED)
        sys.exit(code)


if __name__ == "__main__":
    main()
