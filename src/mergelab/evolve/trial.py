"""One trial, as a worker runs it: decode the genes, build the model in memory, score it.

A :class:`TrialRunner` is opened once per worker process (or Ray actor) from a picklable
:class:`WorkerSpec`: it loads the sources, builds the live model and the evaluators, then
runs any number of trials. Any exception inside a trial (a merge that fails, an evaluator
that raises, a NaN score) becomes a failed :class:`TrialOutcome` carrying the error, so the
search records it and goes on; interrupts (Ctrl-C) still stop the worker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from mergelab.eval import Evaluator
from mergelab.evolve.config import EvolveConfig
from mergelab.evolve.objectives import Objectives
from mergelab.evolve.space import LiveModel, SearchSpace
from mergelab.evolve.spaces import open_space

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs to open a runner; sent to worker processes and actors."""

    config: EvolveConfig
    evaluators: dict[str, Evaluator] = field(default_factory=dict)
    threads: int = 1


@dataclass(frozen=True)
class TrialOutcome:
    """A finished trial: objective ``values`` (None when it failed, with ``error``)."""

    values: list[float] | None
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    error: str | None = None
    merge_seconds: float = 0.0
    eval_seconds: float = 0.0


class TrialRunner:
    """A loaded space, live model and objectives that run trials one after another."""

    def __init__(self, space: SearchSpace, live: LiveModel, objectives: Objectives) -> None:
        self.space = space
        self.live = live
        self.objectives = objectives

    @classmethod
    def open(cls, spec: WorkerSpec) -> TrialRunner:
        torch.set_num_threads(spec.threads)
        space = open_space(spec.config)
        live = space.open_live(None)
        objectives = Objectives(spec.config.objectives, live.tokenizer, spec.evaluators)
        return cls(space, live, objectives)

    def run(self, params: Mapping[str, Any]) -> TrialOutcome:
        started = time.perf_counter()
        merge_seconds = 0.0
        try:
            model = self.live.build(self.space.decode(params))
            merge_seconds = time.perf_counter() - started
            scores = self.objectives(model)
        except Exception as exc:  # any failure of one trial is recorded, not fatal
            log.debug("trial failed", exc_info=True)
            return TrialOutcome(None, error=f"{type(exc).__name__}: {exc}")
        return TrialOutcome(
            scores.values,
            scores.metrics,
            merge_seconds=merge_seconds,
            eval_seconds=time.perf_counter() - started - merge_seconds,
        )

    def close(self) -> None:
        self.live.close()
