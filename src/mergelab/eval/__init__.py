"""Evaluators: score a model on a task (exact match, log-likelihood choice, perplexity,
lm-evaluation-harness tasks, any Python callable).

The task file format is documented in ``docs/tasks.md``.
"""

from __future__ import annotations

from mergelab.eval.callable_evaluator import CallableEvaluator
from mergelab.eval.evaluate import EvalResult, evaluate_model
from mergelab.eval.lm_eval_adapter import LmEvalEvaluator
from mergelab.eval.model_io import load_model
from mergelab.eval.protocol import Evaluator
from mergelab.eval.task import Task, load_task, zoo_task_names
from mergelab.eval.task_evaluator import TaskEvaluator

__all__ = [
    "CallableEvaluator",
    "EvalResult",
    "Evaluator",
    "LmEvalEvaluator",
    "Task",
    "TaskEvaluator",
    "evaluate_model",
    "load_model",
    "load_task",
    "zoo_task_names",
]
