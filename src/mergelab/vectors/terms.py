"""Terms of a task-vector sum: ``SOURCE[:SCALE]`` as written on the command line.

``SOURCE`` is a ``.tv`` artifact folder, a name in the vector store, or a model folder (a
fine-tune of the base, whose vector ``model - base`` is taken on the fly). ``SCALE`` is any
finite number (default 1; negative subtracts: ``toxic.tv:-1`` unlearns). The scale follows
the last ``:``, so paths may contain colons as long as a scale is given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from mergelab.errors import ConfigError, VectorError
from mergelab.vectors.artifact import is_vector
from mergelab.vectors.format import SUFFIX
from mergelab.vectors.store import VectorStore


@dataclass(frozen=True)
class Term:
    """``scale * tau(source)``."""

    source: str
    scale: float = 1.0


def parse_term(text: str) -> Term:
    """``"A.tv:-0.7"`` -> ``Term("A.tv", -0.7)``; ConfigError when the scale is not a number."""
    head, sep, tail = text.rpartition(":")
    if not sep:
        return Term(text, 1.0)
    if Path(text).expanduser().exists() and not _is_number(tail):
        return Term(text, 1.0)  # a path with a colon and no scale
    try:
        scale = float(tail)
    except ValueError:
        raise ConfigError(
            f"scale {tail!r} in {text!r} is not a number; write SOURCE:SCALE, e.g. {head}:0.5"
        ) from None
    if not math.isfinite(scale):
        raise ConfigError(f"scale {tail!r} in {text!r} is not finite; give a finite number")
    if not head:
        raise ConfigError(f"term {text!r} names no vector; write SOURCE:SCALE, e.g. math.tv:0.5")
    return Term(head, scale)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def resolve_source(source: str, store: VectorStore | None) -> tuple[str, bool]:
    """(reference, is_artifact): an artifact or model path, a store name, or a model reference
    left for :meth:`Checkpoint.open` to resolve (hub ids); VectorError for a missing ``.tv``."""
    path = Path(source).expanduser()
    if path.is_dir():
        return str(path), is_vector(path)
    if store is not None and store.has(source):
        return str(store.path_of(source)), True
    if source.endswith(SUFFIX):
        where = f" nor a name in the vector store {store.root}" if store is not None else ""
        raise VectorError(
            f"task vector {source!r} is not a folder{where}; check the path "
            "(`mergelab vector list` shows the store)"
        )
    return source, False
