"""Typed errors. Every message names the bad value and says how to fix it.

The CLI prints ``str(error)`` as one line and exits with ``error.exit_code``; the traceback
is shown only under ``-v``.
"""

from __future__ import annotations


class MergelabError(Exception):
    """Base class of every error mergelab raises on purpose (bad input, not bugs)."""

    exit_code = 1


class ConfigError(MergelabError):
    """A recipe or config file is invalid (unknown key, bad value, impossible combination)."""

    exit_code = 2


class CheckpointError(MergelabError):
    """A checkpoint cannot be read: missing files, corrupt or truncated safetensors."""


class PlanError(MergelabError):
    """The inputs do not fit together (missing tensors, shape or layer-count mismatches)."""


class NonFiniteError(MergelabError):
    """An input or output tensor holds NaN or Inf."""


class OutputError(MergelabError):
    """The output location is unusable (exists, inside an input, unwritable, disk full)."""


class TaskError(MergelabError):
    """An evaluation task is unknown or its files are malformed."""


class EvaluationError(MergelabError):
    """A model cannot be evaluated (not a model folder, tokenizer lacks the task's tokens)."""


class VectorError(MergelabError):
    """A task-vector artifact is corrupt or does not fit the model it is applied to."""


class SearchError(MergelabError):
    """An evolutionary search cannot continue (too many failed trials, bad storage)."""


def join_problems(title: str, problems: list[str]) -> str:
    """One message listing every problem: ``title: p1; p2; ...`` (kept on one line)."""
    return f"{title}: " + "; ".join(problems)
