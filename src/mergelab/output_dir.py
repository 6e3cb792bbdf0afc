"""Where output goes: safety checks up front, then an all-or-nothing output folder.

:func:`check_output_location` refuses destinations that would clobber an input or a
non-empty folder before any work starts. :func:`atomic_output_dir` yields a hidden temporary
folder next to the destination (same filesystem, so the final ``rename`` is atomic) and
renames it into place only on success; on any exception or Ctrl-C it deletes the temporary
folder, so a failed or interrupted run never leaves something that looks like a finished
model. Overwriting moves the old folder aside first and deletes it only after the new one is
in place.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from mergelab.errors import OutputError

logger = logging.getLogger(__name__)


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_output_location(dest: Path, inputs: Sequence[Path], *, overwrite: bool) -> None:
    """OutputError when ``dest`` is unusable for output given these input folders."""
    target = Path(dest).expanduser().resolve()
    for item in inputs:
        source = Path(item).expanduser().resolve()
        if _inside(target, source) or _inside(source, target):
            raise OutputError(
                f"output folder {dest} overlaps input {item}; choose an output folder outside "
                "every input (and not containing one)"
            )
    if target.exists():
        if not target.is_dir():
            raise OutputError(f"output {dest} exists and is a file; choose a folder path")
        if not overwrite and any(target.iterdir()):
            raise OutputError(
                f"output folder {dest} exists and is not empty; pass --overwrite or choose "
                "another folder"
            )
    anchor = _nearest_existing(target.parent)
    if not anchor.is_dir():
        raise OutputError(
            f"cannot create output folder {dest}: {anchor} is a file; choose another folder"
        )
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise OutputError(
            f"cannot create output folder {dest}: {anchor} is not writable; choose another "
            "folder or fix its permissions"
        )


def _sibling(dest: Path, tag: str) -> Path:
    """A fresh hidden folder next to ``dest`` (created with the default permissions)."""
    while True:
        path = dest.parent / f".{dest.name}.mergelab-{tag}-{secrets.token_hex(4)}"
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_output_dir(dest: Path, *, overwrite: bool) -> Iterator[Path]:
    """Yield a temporary folder that becomes ``dest`` when the block ends without error."""
    dest = Path(dest).expanduser().absolute()
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = _sibling(dest, "tmp")
    except OSError as exc:
        raise OutputError(
            f"cannot create a folder next to {dest}: {exc.strerror or exc}; choose another "
            "output folder"
        ) from exc
    try:
        yield tmp
        _replace(tmp, dest, overwrite=overwrite)
    except BaseException:
        _remove(tmp)
        raise


def _replace(tmp: Path, dest: Path, *, overwrite: bool) -> None:
    """Rename ``tmp`` to ``dest``; an existing ``dest`` is moved aside, then deleted."""
    old: Path | None = None
    if dest.exists() or dest.is_symlink():
        if not overwrite and (not dest.is_dir() or any(dest.iterdir())):
            raise OutputError(
                f"output folder {dest} appeared while writing and is not empty; pass "
                "--overwrite or choose another folder"
            )
        old = dest.parent / f".{dest.name}.mergelab-old-{secrets.token_hex(4)}"
        try:
            os.rename(dest, old)
        except OSError as exc:
            raise OutputError(
                f"cannot move the existing {dest} aside: {exc.strerror or exc}; remove it by "
                "hand or choose another folder"
            ) from exc
    try:
        os.rename(tmp, dest)
    except OSError as exc:
        if old is not None:
            os.rename(old, dest)
        raise OutputError(
            f"cannot rename the finished output into {dest}: {exc.strerror or exc}; choose "
            "another folder"
        ) from exc
    _fsync_dir(dest.parent)
    if old is not None:
        _remove(old)
        logger.info("replaced the previous contents of %s", dest)
