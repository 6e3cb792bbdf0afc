"""The default study file: optuna's journal format, written without an fsync per record.

optuna's :class:`~optuna.storages.journal.JournalFileBackend` fsyncs after every record and
takes its lock by creating and deleting a lock file. A trial writes one record per gene
(``set_trial_param``) plus a few more, so with a per-layer genome of a few dozen genes those
file operations cost as much as the trial itself. This backend writes the same file format
(one JSON record per line, so ``JournalFileBackend``, ``optuna-dashboard`` and
``optuna.load_study`` read it) through one file descriptor per process, appending under an
exclusive ``flock`` on the journal itself (optuna's lock file where ``fcntl`` is missing):
a killed process (kill -9, OOM) loses nothing that was written, since written data is in
the page cache; only a power cut or kernel crash can lose the last records, which the OS
flushes within seconds. A torn last line (a write cut by such a crash) is dropped on
opening, under the lock: without it, a process opening the file while another appends would
cut a record being written. Several processes may share the file on one machine; several
machines share a study through ``--storage`` (an RDB).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from optuna.storages.journal import BaseJournalBackend, JournalFileOpenLock

try:
    import fcntl
except ImportError:  # pragma: no cover (Windows)
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)


class JournalFile(BaseJournalBackend):
    """A journal log in ``path`` (created if missing); see the module docstring."""

    def __init__(self, path: Path) -> None:
        self._path = Path(path)
        self._path.touch(exist_ok=True)
        self._fd: int | None = None  # opened per process, on first use
        self._pid = -1
        self._thread_lock = threading.Lock()
        with self._locked():
            _drop_torn_tail(self._path)
        self._position = (0, 0)  # (number of the next record, its byte offset)

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self._path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"])  # type: ignore[misc]

    def _descriptor(self) -> int:
        if self._fd is None or self._pid != os.getpid():  # a forked child opens its own
            self._fd = os.open(self._path, os.O_RDWR | os.O_APPEND)
            self._pid = os.getpid()
        return self._fd

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Exclusive access to the file among threads and processes."""
        with self._thread_lock:
            if fcntl is None:  # pragma: no cover (Windows)
                lock = JournalFileOpenLock(str(self._path))
                lock.acquire()
                try:
                    yield
                finally:
                    lock.release()
                return
            fd = self._descriptor()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def read_logs(self, log_number_from: int) -> Iterator[dict[str, Any]]:
        number, offset = self._position if self._position[0] <= log_number_from else (0, 0)
        with self._path.open("rb") as handle:
            handle.seek(offset)
            for line in handle:
                if not line.endswith(b"\n"):
                    break  # another process is still writing this record
                if number >= log_number_from:
                    yield json.loads(line)
                number += 1
                offset += len(line)
                self._position = (number, offset)

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(entry, separators=(",", ":")) + "\n" for entry in logs)
        data = text.encode("utf-8")
        with self._locked():
            fd = self._descriptor()
            while data:  # a regular file takes it in one write; a short write continues
                data = data[os.write(fd, data) :]


def _drop_torn_tail(path: Path) -> None:
    """Cut a last line without its newline: appending after it would corrupt the file."""
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return
    keep = data.rfind(b"\n") + 1
    log.warning("dropping a torn last record (%d bytes) from %s", len(data) - keep, path)
    with path.open("r+b") as handle:
        handle.truncate(keep)
