"""lm-evaluation-harness tasks as a mergelab Evaluator, on an in-memory HF model.

Wraps the live model in ``lm_eval.models.huggingface.HFLM(pretrained=model,
tokenizer=tokenizer)`` and runs ``lm_eval.simple_evaluate`` on it; the results are
flattened to ``{"<task>/<metric>": value}`` (filter names other than ``none`` are kept as
``<metric>,<filter>``; standard errors are not computed). lm-eval is the optional extra
``mergelab[lmeval]`` and is imported only when an LmEvalEvaluator is built. Unlike a bare
``simple_evaluate`` call, the global python/numpy/torch RNGs are left alone (only the
few-shot sampler is seeded), following mergelab's no-global-RNG rule.
"""

from __future__ import annotations

import difflib
from typing import Any

from torch import nn
from transformers import PreTrainedTokenizerBase

from mergelab.errors import EvaluationError

INSTALL_HINT = "install the extra: pip install 'mergelab[lmeval]'"


class LmEvalEvaluator:
    """Evaluator running lm-eval ``tasks`` (names, or YAML tasks found under ``include_path``).

    Indexing lm-eval's ~15,000 built-in task files takes seconds; it happens once, here.
    ``include_defaults=False`` skips it when every task lives under ``include_path``.
    """

    def __init__(
        self,
        tasks: list[str],
        *,
        tokenizer: PreTrainedTokenizerBase,
        include_path: str | None = None,
        include_defaults: bool = True,
        limit: int | float | None = None,
        num_fewshot: int | None = None,
        batch_size: int = 16,
        fewshot_seed: int = 1234,
    ) -> None:
        if not tasks:
            raise EvaluationError("no lm-eval tasks given; pass at least one task name")
        lm_eval = _import_lm_eval()
        self._lm_eval = lm_eval
        self._manager = lm_eval["TaskManager"](
            include_path=include_path, include_defaults=include_defaults
        )
        known = set(self._manager.all_tasks)
        for name in tasks:
            if name not in known:
                close = difflib.get_close_matches(name, sorted(known), n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                raise EvaluationError(
                    f"unknown lm-eval task '{name}'; {hint}check the name or the "
                    f"include_path ({include_path!r}) that holds its YAML"
                )
        self.tasks = list(tasks)
        self._tokenizer = tokenizer
        self._limit = limit
        self._num_fewshot = num_fewshot
        self._batch_size = batch_size
        self._fewshot_seed = fewshot_seed

    def __call__(self, model: nn.Module) -> dict[str, float]:
        training = model.training
        try:
            lm = self._lm_eval["HFLM"](
                pretrained=model, tokenizer=self._tokenizer, batch_size=self._batch_size
            )
            results = self._lm_eval["simple_evaluate"](
                model=lm,
                tasks=self.tasks,
                num_fewshot=self._num_fewshot,
                limit=self._limit,
                task_manager=self._manager,
                bootstrap_iters=0,
                log_samples=False,
                random_seed=None,
                numpy_random_seed=None,
                torch_random_seed=None,
                fewshot_random_seed=self._fewshot_seed,
            )
        finally:
            model.train(training)  # HFLM switches the model to eval mode
        if results is None:  # lm-eval returns None on non-zero ranks only
            raise EvaluationError("lm-eval returned no results; run on a single process")
        return flatten_results(results["results"])


def flatten_results(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    """``{task: {"acc,none": 0.5, "acc_stderr,none": ..., "alias": ...}}`` ->
    ``{"task/acc": 0.5}``: numeric ``metric,filter`` entries only, no standard errors."""
    flat: dict[str, float] = {}
    for task, metrics in results.items():
        for key, value in metrics.items():
            metric, comma, filter_name = key.partition(",")
            if not comma or metric.endswith("_stderr"):
                continue  # "alias", "sample_len", standard errors: not metrics
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            name = metric if filter_name in ("", "none") else f"{metric},{filter_name}"
            flat[f"{task}/{name}"] = float(value)
    return flat


def _import_lm_eval() -> dict[str, Any]:
    try:
        from lm_eval import simple_evaluate
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager
    except ImportError as exc:
        raise EvaluationError(
            f"lm-evaluation-harness is not installed ({exc.name} is missing); {INSTALL_HINT}"
        ) from None
    return {"simple_evaluate": simple_evaluate, "HFLM": HFLM, "TaskManager": TaskManager}
