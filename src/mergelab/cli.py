"""The ``mergelab`` command: one typer app; each command group lives in ``mergelab.commands``.

This is the only module that configures logging and progress output. Errors derived from
:class:`~mergelab.errors.MergelabError` are printed as one line (the traceback only under
``-v``) and end the process with the error's exit code.
"""

from __future__ import annotations

import logging
import os
import sys
from importlib import import_module

import click
import typer
from rich.console import Console

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
# A command line naming one command imports only its module (the others import torch,
# transformers, optuna...): start-up stays short.
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
COMMAND_MODULE_OF = {"extract-lora": "vector"}  # commands registered by another module

_verbosity = {"level": 0}
_INTERRUPTED = "[bold red]interrupted:[/] stopped by the user; no partial output was kept"


@app.callback()
def _configure(
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More detail; -vv debug."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only errors; no progress bars."),
) -> None:
    level = logging.ERROR if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", force=True)
    if not verbose:  # transformers' own bars and notices: mergelab's bars say what goes on
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # read on import
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        hf_logging = sys.modules.get("transformers.utils.logging")  # imported already
        if hf_logging is not None:
            hf_logging.set_verbosity_error()
            hf_logging.disable_progress_bar()
    _verbosity["level"] = -1 if quiet else verbose
    set_progress_enabled(not quiet and sys.stderr.isatty())


def _register_commands(argv: list[str]) -> None:
    """Register the module of the command ``argv`` names, or every module (help, typos)."""
    words = [a for a in argv if not a.startswith("-")]
    named = COMMAND_MODULE_OF.get(words[0], words[0]) if words else None
    for name in (named,) if named in COMMAND_MODULES else COMMAND_MODULES:
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
    argv = _global_flags_first(list(sys.argv[1:] if argv is None else argv))
    _register_commands(argv)
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
    except (click.exceptions.Abort, typer.Abort):
        sys.exit(1)
    except (click.ClickException, typer.TyperException) as exc:  # usage: bad option, typo
        show = getattr(exc, "show", None)  # typer's own click has the same exceptions
        if show is not None:
            show()
        else:
            err.print(f"[bold red]error:[/] {exc.format_message()}")
        sys.exit(exc.exit_code)
    if isinstance(code, int) and code != 0:  # typer returns exit codes when not standalone
        if code == 130:
            err.print(_INTERRUPTED)
        sys.exit(code)


if __name__ == "__main__":
    main()
