"""The local vector store: a folder of ``NAME.tv`` artifacts, addressed by NAME.

The folder is ``$MERGELAB_VECTOR_STORE`` when set, else ``~/.mergelab/vectors``, or any folder
given explicitly. ``add`` validates an artifact (opens it) and copies it in atomically;
``remove`` deletes one; ``entries`` lists them with their metadata (a corrupt entry is listed
with its problem instead of hiding it).
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from mergelab.errors import ConfigError, MergelabError, OutputError, VectorError
from mergelab.output_dir import atomic_output_dir
from mergelab.vectors.artifact import TaskVector
from mergelab.vectors.format import SUFFIX, VectorMeta

ENV_VAR = "MERGELAB_VECTOR_STORE"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class StoreEntry:
    """One stored artifact: its name, folder, metadata and bytes (or why it cannot be read)."""

    name: str
    path: Path
    meta: VectorMeta | None
    size: int
    problem: str | None = None


class VectorStore:
    """The artifacts in ``root`` (created on first ``add``)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()

    @classmethod
    def default(cls) -> VectorStore:
        return cls(os.environ.get(ENV_VAR) or Path.home() / ".mergelab" / "vectors")

    def path_of(self, name: str) -> Path:
        return self.root / f"{name.removesuffix(SUFFIX)}{SUFFIX}"

    def has(self, name: str) -> bool:
        return _NAME.match(name) is not None and self.path_of(name).is_dir()

    def get(self, name: str) -> Path:
        """The folder of artifact ``name``; VectorError listing what the store holds."""
        if not self.has(name):
            held = ", ".join(e.name for e in self.entries()) or "nothing"
            raise VectorError(
                f"no task vector named {name!r} in the store {self.root} (it holds: {held}); "
                "add it with `mergelab vector add PATH`"
            )
        return self.path_of(name)

    def entries(self) -> list[StoreEntry]:
        if not self.root.is_dir():
            return []
        found = [p for p in self.root.glob(f"*{SUFFIX}") if p.is_dir()]
        return [_entry(p) for p in sorted(found, key=lambda p: p.name.removesuffix(SUFFIX))]

    def add(
        self, artifact: str | Path, *, name: str | None = None, overwrite: bool = False
    ) -> Path:
        """Copy the artifact into the store under ``name`` (default: its own name)."""
        with TaskVector.open(artifact) as vector:
            source = vector.path
            chosen = name or vector.name
        if _NAME.match(chosen) is None:
            raise ConfigError(
                f"vector name {chosen!r} is not usable; use letters, digits, '.', '_' and '-'"
            )
        dest = self.path_of(chosen)
        if dest.exists() and not overwrite:
            raise OutputError(
                f"the store already holds {chosen!r} ({dest}); pass --overwrite or --name"
            )
        if dest.resolve() == source:
            return dest
        with atomic_output_dir(dest, overwrite=overwrite) as tmp:
            shutil.copytree(source, tmp, dirs_exist_ok=True)
        return dest

    def remove(self, name: str) -> Path:
        path = self.get(name)
        shutil.rmtree(path)
        return path


def _entry(path: Path) -> StoreEntry:
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    name = path.name.removesuffix(SUFFIX)
    try:
        with TaskVector.open(path) as vector:
            return StoreEntry(name, path, vector.meta, size)
    except MergelabError as exc:
        return StoreEntry(name, path, None, size, str(exc))
