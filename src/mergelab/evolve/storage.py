"""Where a study lives, and how a search resumes after a crash.

- Default: an optuna journal file, ``OUT_DIR/study.journal`` (``JournalStorage`` over
  :class:`~mergelab.evolve.journal.JournalFile`; optuna-dashboard opens it directly).
  ``--storage URL`` takes an optuna RDB URL (``sqlite:///x.db``,
  ``postgresql://user:pw@host/db``) shared by several machines.
- The study records a fingerprint of the search-defining config; resuming with another
  config is refused.
- Resuming: trials left RUNNING by a process that died (kill -9, power loss) are marked FAIL
  with a user attr ``interrupted`` and do not count toward the budget; trials a worker
  finished count, failed ones included (they carry ``error``). A RUNNING trial is known dead
  when its ``worker`` attr names this host and a process that no longer exists; on an RDB,
  optuna's heartbeat also fails trials of machines that stopped beating.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.trial import FrozenTrial, TrialState

from mergelab.errors import ConfigError, SearchError
from mergelab.evolve.config import EvolveConfig, load_evolve_config
from mergelab.evolve.journal import JournalFile

log = logging.getLogger(__name__)

JOURNAL_FILE = "study.journal"
CONFIG_FILE = "evolve_config.yml"
DEFAULT_STUDY = "mergelab-evolve"
CONFIG_ATTR = "mergelab_config"
WORKER_ATTR = "worker"
ERROR_ATTR = "error"
INTERRUPTED_ATTR = "interrupted"
HEARTBEAT_SECONDS = 30
GRACE_SECONDS = 120


def open_storage(url: str | None, out_dir: Path) -> BaseStorage:
    """The journal file in ``out_dir`` (``url`` None) or the RDB at ``url``."""
    if url is None:
        return JournalStorage(JournalFile(out_dir / JOURNAL_FILE))
    if not url.startswith(("sqlite:", "postgresql", "mysql")):
        raise ConfigError(
            f"storage URL {url!r} is not an optuna RDB URL; use sqlite:///path.db or "
            "postgresql://user:password@host/database (or leave --storage out)"
        )
    try:
        with warnings.catch_warnings():  # optuna marks heartbeats experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RDBStorage(url, heartbeat_interval=HEARTBEAT_SECONDS, grace_period=GRACE_SECONDS)
    except Exception as exc:  # SQLAlchemy raises many types (driver missing, bad URL, refused)
        raise SearchError(
            f"cannot open storage {url}: {str(exc).splitlines()[0]}; check the URL, the server "
            "and its Python driver"
        ) from None


def open_study(storage: BaseStorage, name: str, config: EvolveConfig) -> tuple[optuna.Study, bool]:
    """(study, created): the study ``name``, created for ``config`` or checked against it."""
    directions = [o.direction for o in config.objectives]
    definition = config.search_definition()
    try:
        storage.get_study_id_from_name(name)
    except KeyError:
        study = optuna.create_study(storage=storage, study_name=name, directions=directions)
        study.set_user_attr(CONFIG_ATTR, {"fingerprint": config.fingerprint(), **definition})
        return study, True
    study = optuna.load_study(study_name=name, storage=storage)
    stored = study.user_attrs.get(CONFIG_ATTR)
    if not isinstance(stored, dict) or stored.get("fingerprint") != config.fingerprint():
        old = dict(stored) if isinstance(stored, dict) else {}
        raise ConfigError(
            f"study '{name}' was made by a different config ({config_differences(old, definition)}"
            " differ); use a new OUT_DIR (or --study-name), or restore the original config"
        )
    return study, False


def config_differences(old: dict[str, Any], new: dict[str, Any]) -> str:
    """The top-level keys whose values differ, for messages."""
    keys = sorted(k for k in set(old) | set(new) if k != "fingerprint" and old.get(k) != new.get(k))
    return ", ".join(keys) or "its fingerprint"


def check_out_dir_config(out_dir: Path, config: EvolveConfig) -> None:
    """Write ``OUT_DIR/evolve_config.yml``, or refuse when the one there defines another search."""
    path = out_dir / CONFIG_FILE
    if path.is_file():
        old = load_evolve_config(path)
        if old.fingerprint() != config.fingerprint():
            raise ConfigError(
                f"{out_dir} holds a search made by a different config "
                f"({config_differences(old.search_definition(), config.search_definition())} "
                f"differ); use a new OUT_DIR, or restore the config in {path}"
            )
    path.write_text(config.to_yaml(), encoding="utf-8")


def worker_id() -> str:
    """``host:pid`` of this process, stored on every trial it runs."""
    return f"{socket.gethostname()}:{os.getpid()}"


def counts_toward_budget(trial: FrozenTrial) -> bool:
    """Finished by a worker: complete, or failed with its error recorded."""
    return trial.state == TrialState.COMPLETE or (
        trial.state == TrialState.FAIL and ERROR_ATTR in trial.user_attrs
    )


def reap_stale_trials(study: optuna.Study, storage: BaseStorage) -> int:
    """Mark RUNNING trials of dead processes FAIL (``interrupted``); return how many."""
    study_id = storage.get_study_id_from_name(study.study_name)
    host = socket.gethostname()
    reaped = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = str(trial.user_attrs.get(WORKER_ATTR, ""))
        owner_host, _, pid = owner.rpartition(":")
        if owner_host != host or not pid.isdigit() or _alive(int(pid)):
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        try:
            storage.set_trial_user_attr(trial_id, INTERRUPTED_ATTR, f"process {owner} stopped")
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
            reaped += 1
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another process reaped it first
    if isinstance(storage, RDBStorage):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
    if reaped:
        log.warning("marked %d trial(s) of a stopped run as failed (interrupted)", reaped)
    return reaped


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Heartbeat:
    """Records optuna heartbeats of in-flight trials on an RDB (a no-op on a journal)."""

    def __init__(self, storage: BaseStorage, study: optuna.Study) -> None:
        self._storage = storage if isinstance(storage, RDBStorage) else None
        self._study_id = storage.get_study_id_from_name(study.study_name)
        self._numbers: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if self._storage is not None:
            self._thread = threading.Thread(target=self._beat, name="mergelab-heartbeat")
            self._thread.daemon = True
            self._thread.start()

    def track(self, numbers: Iterable[int]) -> None:
        """Beat for exactly ``numbers`` from now on (new ones get a first beat at once)."""
        numbers = set(numbers)
        with self._lock:
            new, self._numbers = numbers - self._numbers, numbers
        for number in new:
            self._record(number)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            with self._lock:
                numbers = list(self._numbers)
            for number in numbers:
                self._record(number)

    def _record(self, number: int) -> None:
        if self._storage is None:
            return
        trial_id = self._storage.get_trial_id_from_study_id_trial_number(self._study_id, number)
        self._storage.record_heartbeat(trial_id)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
