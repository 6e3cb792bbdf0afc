"""Objectives: the fitness of a live model, one number per objective.

Task objectives are scored by :class:`~mergelab.eval.TaskEvaluator`s built once per
(task, split, limit), pre-tokenized, and shared by the objectives that read different metrics
of the same evaluation; named objectives call the evaluators passed to ``evolve()``, which
may return a number (metric ``score``) or a dict of numbers. A missing metric or a
non-finite value is an error: the trial fails, the search goes on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from torch import nn
from transformers import PreTrainedTokenizerBase

from mergelab.errors import EvaluationError
from mergelab.eval import CallableEvaluator, Evaluator, TaskEvaluator, load_task
from mergelab.evolve.config import ObjectiveSpec


@dataclass(frozen=True)
class Scores:
    """``values`` in objective order; ``metrics`` every metric, by evaluation."""

    values: list[float]
    metrics: dict[str, dict[str, float]]


def evaluation_key(objective: ObjectiveSpec, split: str | None = None) -> str:
    """The evaluation an objective reads: ``task/split[:limit]`` or the evaluator's name."""
    if objective.task is None:
        return str(objective.evaluator)
    name = load_task(objective.task).name
    limit = f":{objective.limit}" if objective.limit is not None and split is None else ""
    return f"{name}/{split or objective.split}{limit}"


class Objectives:
    """Scores a model on every objective, each evaluation run once."""

    def __init__(
        self,
        specs: Sequence[ObjectiveSpec],
        tokenizer: PreTrainedTokenizerBase,
        custom: Mapping[str, Evaluator] | None = None,
        *,
        split: str | None = None,
    ) -> None:
        """``split`` replaces every task objective's split (and lifts its limit): test runs."""
        self.specs = list(specs)
        self.keys = [evaluation_key(o, split) for o in self.specs]
        self.evaluators: dict[str, Evaluator] = {}
        for spec, key in zip(self.specs, self.keys, strict=True):
            if key in self.evaluators:
                continue
            if spec.task is None:
                # a float or a dict of floats (tensors too) becomes {metric: float}
                self.evaluators[key] = CallableEvaluator((custom or {})[str(spec.evaluator)])
            else:
                self.evaluators[key] = TaskEvaluator(
                    spec.task,
                    tokenizer,
                    split=split or spec.split,
                    limit=None if split is not None else spec.limit,
                )

    def items(self) -> int:
        """Items scored per call (task evaluations only)."""
        return sum(getattr(e, "n", 0) for e in self.evaluators.values())

    def __call__(self, model: nn.Module) -> Scores:
        metrics = {key: dict(evaluator(model)) for key, evaluator in self.evaluators.items()}
        values = []
        for spec, key in zip(self.specs, self.keys, strict=True):
            found = metrics[key]
            metric = spec.metric or "score"
            if metric not in found:
                raise EvaluationError(
                    f"evaluation {key} returned no metric '{metric}' (it returned "
                    f"{', '.join(found) or 'nothing'}); fix the objective's metric"
                )
            value = float(found[metric])
            if not math.isfinite(value):
                raise EvaluationError(f"objective {spec.label} scored {value}; the model diverged")
            values.append(value)
        return Scores(values, metrics)
