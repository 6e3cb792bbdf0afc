"""The default study file: optuna's journal format, written without an fsync per record.

optuna's :class:`~optuna.storages.journal.JournalFileBackend` fsyncs after every record.
A trial writes one record per gene (``set_trial_param``) plus a few more, so with a
per-layer genome of a few dozen genes the fsyncs alone cost ~0.25 s per trial on an
ordinary disk, as much as the trial itself. This backend writes the same file format (one
JSON record per line, so ``JournalFileBackend``, ``optuna-dashboard`` and ``optuna.load_study``
read it) with a plain write and flush under optuna's ``JournalFileOpenLock``: a killed
process (kill -9, OOM) loses nothing that was written, since written data is in the page
cache; only a power cut or kernel crash can lose the last records, which the OS flushes
within seconds. A torn last line (a write cut by such a crash) is dropped on opening.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from optuna.storages.journal import BaseJournalBackend, JournalFileOpenLock

log = logging.getLogger(__name__)


class JournalFile(BaseJournalBackend):
    """A journal log in ``path`` (created if missing); see the module docstring."""

    def __init__(self, path: Path) -> None:
        self._path = Path(path)
        self._path.touch(exist_ok=True)
        _drop_torn_tail(self._path)
        self._lock = JournalFileOpenLock(str(self._path))
        self._position = (0, 0)  # (number of the next record, its byte offset)

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
        self._lock.acquire()
        try:
            with self._path.open("ab") as handle:
                handle.write(text.encode("utf-8"))
        finally:
            self._lock.release()


def _drop_torn_tail(path: Path) -> None:
    """Cut a last line without its newline: appending after it would corrupt the file."""
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return
    keep = data.rfind(b"\n") + 1
    log.warning("dropping a torn last record (%d bytes) from %s", len(data) - keep, path)
    with path.open("r+b") as handle:
        handle.truncate(keep)
