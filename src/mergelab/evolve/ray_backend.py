"""Trials evaluated on a Ray cluster (``--backend ray [--address ...]``); Ray is optional.

Each Ray actor (one CPU each) opens its own :class:`~mergelab.evolve.trial.TrialRunner`
once and runs the trials it is given; the search loop stays in the driver process, asking
and telling as results come back. The models and task files must be readable at the same
paths on every node. Without ``--address`` a local Ray instance is started; with it, the
driver joins that cluster (``ray://host:10001`` or ``auto``). Install with
``pip install 'mergelab[ray]'``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mergelab.errors import ConfigError, SearchError
from mergelab.evolve.trial import TrialOutcome, TrialRunner, WorkerSpec


class _Actor:
    """The body of one Ray actor: a runner kept for the actor's lifetime."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.runner = TrialRunner.open(spec)

    def run(self, params: dict[str, Any]) -> TrialOutcome:
        return self.runner.run(params)


class RayBackend:
    """``workers`` Ray actors (default: one per CPU of the cluster)."""

    def __init__(self, spec: WorkerSpec, workers: int | None, address: str | None) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError(
                "the ray backend needs Ray; install it with `pip install 'mergelab[ray]'`"
            ) from None
        self._ray: Any = ray
        self._owns = not ray.is_initialized()
        if self._owns:
            ray.init(address=address, log_to_driver=False)
        count = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        actor: Any = ray.remote(num_cpus=1)(_Actor)
        self._actors: list[Any] = [actor.remote(spec) for _ in range(count)]
        self._idle = list(self._actors)
        self._running: dict[Any, tuple[int, Any]] = {}

    @property
    def slots(self) -> int:
        return len(self._actors)

    def submit(self, number: int, params: Mapping[str, Any]) -> None:
        actor = self._idle.pop()
        self._running[actor.run.remote(dict(params))] = (number, actor)

    def next_done(self) -> tuple[int, TrialOutcome]:
        ray = self._ray
        done, _ = ray.wait(list(self._running), num_returns=1)
        number, actor = self._running.pop(done[0])
        try:
            outcome: TrialOutcome = ray.get(done[0])
        except ray.exceptions.RayError as exc:
            raise SearchError(
                f"a Ray worker failed ({str(exc).splitlines()[0]}); check that every node can "
                "read the models and import mergelab"
            ) from None
        self._idle.append(actor)
        return number, outcome

    def close(self) -> None:
        for actor in self._actors:
            self._ray.kill(actor)
        self._actors = []
        if self._owns:
            self._ray.shutdown()
