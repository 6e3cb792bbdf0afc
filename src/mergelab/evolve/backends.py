"""Where trials run: in this process, or in N worker processes on this machine.

The search loop asks and tells in one process; a :class:`Backend` only evaluates trials'
genes and hands back :class:`~mergelab.evolve.trial.TrialOutcome`s as they finish, up to
``slots`` at a time. Each worker opens its :class:`~mergelab.evolve.trial.TrialRunner`
once (sources loaded, model built, evaluators pre-tokenized) and keeps it for every trial.
The Ray backend (:mod:`mergelab.evolve.ray_backend`) has the same shape.
"""

from __future__ import annotations

import multiprocessing
import pickle
import signal
from collections import deque
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

from mergelab.errors import ConfigError, SearchError
from mergelab.evolve.trial import TrialOutcome, TrialRunner, WorkerSpec


class Backend(Protocol):
    """Runs trials; ``submit`` at most ``slots`` at once, ``next_done`` blocks for one."""

    @property
    def slots(self) -> int: ...

    def submit(self, number: int, params: Mapping[str, Any]) -> None: ...

    def next_done(self) -> tuple[int, TrialOutcome]: ...

    def close(self) -> None: ...


class InlineBackend:
    """Runs each trial in this process when its result is asked for."""

    def __init__(self, runner: TrialRunner) -> None:
        self.runner = runner
        self._queue: deque[tuple[int, dict[str, Any]]] = deque()

    @property
    def slots(self) -> int:
        return 1

    def submit(self, number: int, params: Mapping[str, Any]) -> None:
        self._queue.append((number, dict(params)))

    def next_done(self) -> tuple[int, TrialOutcome]:
        number, params = self._queue.popleft()
        return number, self.runner.run(params)

    def close(self) -> None:
        self.runner.close()


_worker: dict[str, TrialRunner] = {}  # the runner of a worker process (set by _init_worker)


def _init_worker(spec: WorkerSpec) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the search loop's to handle
    _worker["runner"] = TrialRunner.open(spec)


def _run_in_worker(params: dict[str, Any]) -> TrialOutcome:
    return _worker["runner"].run(params)


class ProcessBackend:
    """``workers`` spawned processes, each with its own runner and ``spec.threads`` threads."""

    def __init__(self, spec: WorkerSpec, workers: int) -> None:
        try:
            pickle.dumps(spec)
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            raise ConfigError(
                f"the evaluators cannot be sent to worker processes ({exc}); define them as "
                "module-level functions or classes, or use --workers 1"
            ) from None
        self._workers = workers
        self._pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(spec,),
        )
        self._running: dict[Future[TrialOutcome], int] = {}

    @property
    def slots(self) -> int:
        return self._workers

    def submit(self, number: int, params: Mapping[str, Any]) -> None:
        self._running[self._pool.submit(_run_in_worker, dict(params))] = number

    def next_done(self) -> tuple[int, TrialOutcome]:
        done, _ = wait(list(self._running), return_when=FIRST_COMPLETED)
        future = next(iter(done))
        number = self._running.pop(future)
        try:
            return number, future.result()
        except BrokenProcessPool:
            raise SearchError(
                "a worker process died (out of memory, or it could not load the models); "
                "rerun with -v and --workers 1 to see why"
            ) from None

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
