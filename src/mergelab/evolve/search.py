"""The search loop: optuna ask/tell over a backend, with a budget and failure handling.

The loop keeps the backend's slots full (``study.ask`` with the space's distributions),
tells each outcome as it arrives, and stops when the trial budget is spent (counting
trials of earlier runs of the same study), when this run's wall time is up, or after
``max_consecutive_failures`` failed trials in a row (a SearchError naming the last error).
A failed trial (merge error, evaluator exception, NaN) is told FAIL with its ``error`` user
attr and the search goes on. Trials still running when the loop stops for any reason are
told FAIL with ``interrupted`` and do not count. Several drivers sharing one RDB study each
enforce the budget on what they see, so together they may overshoot it by a few trials.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from mergelab.errors import SearchError
from mergelab.evolve.backends import Backend
from mergelab.evolve.config import BudgetSpec
from mergelab.evolve.space import SearchSpace
from mergelab.evolve.storage import (
    ERROR_ATTR,
    INTERRUPTED_ATTR,
    WORKER_ATTR,
    Heartbeat,
    counts_toward_budget,
    worker_id,
)
from mergelab.evolve.trial import TrialOutcome
from mergelab.progress import progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SearchStats:
    """What one run of the loop did."""

    finished: int
    failed: int
    stopped_by: str
    seconds: float
    merge_seconds: float
    eval_seconds: float


@dataclass
class _Best:
    """Best value so far per objective (for the progress bar)."""

    directions: list[str]
    values: list[float | None]

    def update(self, values: list[float]) -> None:
        for i, (value, direction) in enumerate(zip(values, self.directions, strict=True)):
            old = self.values[i]
            if old is None or (value > old if direction == "maximize" else value < old):
                self.values[i] = value

    def text(self) -> str:
        shown = [f"{v:.4g}" for v in self.values if v is not None]
        return ("best " + " | ".join(shown)) if shown else ""


def run_search(
    study: optuna.Study,
    space: SearchSpace,
    backend: Backend,
    *,
    budget: BudgetSpec,
    max_consecutive_failures: int,
    heartbeat: Heartbeat,
) -> SearchStats:
    """Run trials until the budget is spent; see the module docstring."""
    started = time.monotonic()
    previous = [t for t in study.get_trials(deepcopy=False) if counts_toward_budget(t)]
    best = _Best([d.name.lower() for d in study.directions], [None] * len(study.directions))
    for done in previous:
        if done.state == TrialState.COMPLETE and done.values is not None:
            best.update(list(done.values))
    limit = budget.trials if budget.trials is not None else math.inf
    deadline = started + budget.seconds if budget.seconds is not None else math.inf
    distributions = space.distributions()
    owner = worker_id()
    running: dict[int, optuna.trial.Trial] = {}
    finished = failed = streak = 0
    merge_s = eval_s = 0.0
    stopped_by = "trials"
    with progress("evolving", budget.trials) as bar:
        bar.advance(min(len(previous), limit), info=best.text())
        try:
            while True:
                while len(running) < backend.slots:
                    if len(previous) + finished + len(running) >= limit:
                        break
                    if time.monotonic() >= deadline:
                        stopped_by = "time"
                        break
                    with warnings.catch_warnings():  # heartbeats are ours to record (storage)
                        warnings.filterwarnings("ignore", message="Heartbeat of storage")
                        asked = _ask_owned(study, distributions, owner)
                    backend.submit(asked.number, asked.params)
                    running[asked.number] = asked
                    heartbeat.track(running)
                if not running:
                    break
                number, outcome = backend.next_done()
                _tell(study, running.pop(number), outcome)
                heartbeat.track(running)
                finished += 1
                merge_s += outcome.merge_seconds
                eval_s += outcome.eval_seconds
                if outcome.values is None:
                    failed += 1
                    streak += 1
                    log.warning("trial %d failed: %s", number, outcome.error)
                    if streak >= max_consecutive_failures:
                        raise SearchError(
                            f"{streak} trials failed in a row, the last with: {outcome.error}; "
                            "fix the cause (or raise max_consecutive_failures) and rerun to resume"
                        )
                else:
                    streak = 0
                    best.update(outcome.values)
                    log.debug("trial %d: %s", number, outcome.values)
                bar.advance(1, info=best.text())
        finally:
            for left in running.values():
                left.set_user_attr(INTERRUPTED_ATTR, "the search stopped while it ran")
                study.tell(left, state=TrialState.FAIL)
            heartbeat.track([])
    return SearchStats(finished, failed, stopped_by, time.monotonic() - started, merge_s, eval_s)


def _ask_owned(
    study: optuna.Study, distributions: dict[str, Any], owner: str
) -> optuna.trial.Trial:
    """Ask for a trial that carries its owner from the moment it is RUNNING.

    A trial created bare and labelled afterwards would be orphaned by a kill in between, and
    no resume could tell it dead; a WAITING trial enqueued with the owner attr is popped into
    RUNNING with the attr already stored.
    """
    if not study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        study.enqueue_trial({}, user_attrs={WORKER_ATTR: owner})
    asked = study.ask(distributions)
    asked.set_user_attr(WORKER_ATTR, owner)  # a popped start point may name another run
    return asked


def _tell(study: optuna.Study, trial: optuna.trial.Trial, outcome: TrialOutcome) -> None:
    trial.set_user_attr(
        "seconds",
        {"merge": round(outcome.merge_seconds, 4), "eval": round(outcome.eval_seconds, 4)},
    )
    if outcome.values is None:
        trial.set_user_attr(ERROR_ATTR, outcome.error or "unknown error")
        study.tell(trial, state=TrialState.FAIL)
        return
    trial.set_user_attr("metrics", outcome.metrics)
    study.tell(trial, outcome.values)
