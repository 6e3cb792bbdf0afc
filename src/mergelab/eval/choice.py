"""Log-likelihood multiple choice, scored as lm-evaluation-harness scores ``multiple_choice``.

For item (prompt, choices c_1..c_k, label y):
    score_j      = log p(c_j | bos + prompt)       summed over the choice's tokens
    accuracy     = [argmax_j score_j == y]
    accuracy_norm= [argmax_j score_j / len(c_j) == y]   len in characters, as lm-eval's
                                                         ``acc_norm``
Ties go to the first choice. The prompt and choice are joined by one space (lm-eval's
default ``target_delimiter``), see :mod:`mergelab.eval.encoding`.
"""

from __future__ import annotations

from typing import Any

from torch import nn
from transformers import PreTrainedTokenizerBase

from mergelab.errors import EvaluationError
from mergelab.eval.encoding import bos_ids, check_known_words, encode_continuations, pad_id
from mergelab.eval.loglik import PlannedScoreBatches
from mergelab.eval.task import Task


class ChoiceScorer:
    """Scores ``choice`` items; every (prompt, choice) is tokenized once, at construction."""

    def __init__(
        self,
        task: Task,
        items: list[dict[str, Any]],
        tokenizer: PreTrainedTokenizerBase,
        *,
        batch_size: int | None,
        device: str,
    ) -> None:
        texts = [item["prompt"] for item in items]
        texts += [choice for item in items for choice in item["choices"]]
        check_known_words(tokenizer, texts, task.name)
        self._task = task
        self._items = items
        pairs = [(item["prompt"], choice) for item in items for choice in item["choices"]]
        prefix = bos_ids(tokenizer)
        seqs: list[list[int]] = []
        starts: list[int] = []
        for index, (context, continuation) in enumerate(encode_continuations(tokenizer, pairs)):
            if not continuation or not prefix + context:
                raise EvaluationError(
                    f"task '{task.name}': choice {pairs[index][1]!r} of prompt "
                    f"{pairs[index][0]!r} gives no token to score; use a non-empty prompt "
                    "(or a tokenizer with a bos token) and a non-empty choice"
                )
            seqs.append(prefix + context + continuation)
            starts.append(len(prefix) + len(context))
        self._batches = PlannedScoreBatches(
            seqs, starts, pad_id(tokenizer), batch_size=batch_size, device=device
        )

    def metrics(self, model: nn.Module) -> dict[str, float]:
        """accuracy and accuracy_norm, primary first."""
        rows = self.details(model)
        totals = {
            "accuracy": sum(r["correct"] for r in rows) / len(rows),
            "accuracy_norm": sum(r["correct_norm"] for r in rows) / len(rows),
        }
        return {name: float(totals[name]) for name in self._task.metric_names}

    def details(self, model: nn.Module) -> list[dict[str, Any]]:
        """Per item: prompt, choices, label, per-choice log-likelihoods and both verdicts."""
        scores = self._batches.logprobs(model).tolist()
        rows = []
        offset = 0
        for item in self._items:
            choices = item["choices"]
            logliks = scores[offset : offset + len(choices)]
            offset += len(choices)
            normed = [s / len(c) for s, c in zip(logliks, choices, strict=True)]
            pred, pred_norm = _argmax(logliks), _argmax(normed)
            rows.append(
                {
                    "prompt": item["prompt"],
                    "choices": choices,
                    "label": item["label"],
                    "logliks": logliks,
                    "pred": pred,
                    "pred_norm": pred_norm,
                    "correct": pred == item["label"],
                    "correct_norm": pred_norm == item["label"],
                }
            )
        return rows


def _argmax(values: list[float]) -> int:
    """Index of the largest value; the first one on ties."""
    return values.index(max(values))
