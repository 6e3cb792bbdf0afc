"""One-shot evaluation of a saved model on a task split (the library side of ``mergelab eval``)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from mergelab.eval.model_io import load_model
from mergelab.eval.task import Task, load_task
from mergelab.eval.task_evaluator import TaskEvaluator

logger = logging.getLogger(__name__)


class EvalResult(BaseModel):
    """What ``mergelab eval --json`` prints: model, task, split, n, metrics (primary first).

    ``seconds`` (scoring time, loading excluded) is kept out of the JSON form.
    """

    model_config = ConfigDict(extra="forbid")

    model: str
    task: str
    split: str
    n: int
    metrics: dict[str, float]
    seconds: float = Field(default=0.0, exclude=True)


def evaluate_model(
    model_path: str | Path,
    task: Task | str | Path,
    *,
    split: str = "fitness",
    limit: int | None = None,
    batch_size: int | None = None,
    device: str = "cpu",
    threads: int | None = None,
) -> EvalResult:
    """Load ``model_path`` and score it on ``split`` of ``task`` (a zoo name or a .yaml)."""
    loaded = task if isinstance(task, Task) else load_task(task)
    loaded.split_path(split)  # an unknown split fails before the model is loaded
    model, tokenizer = load_model(model_path, device=device)
    evaluator = TaskEvaluator(
        loaded,
        tokenizer,
        split=split,
        limit=limit,
        batch_size=batch_size,
        device=device,
        threads=threads,
    )
    start = time.perf_counter()
    metrics = evaluator(model)
    seconds = time.perf_counter() - start
    logger.info(
        "%s on %s/%s: %d items in %.2f s", model_path, loaded.name, split, evaluator.n, seconds
    )
    return EvalResult(
        model=str(model_path),
        task=loaded.name,
        split=split,
        n=evaluator.n,
        metrics=metrics,
        seconds=seconds,
    )
