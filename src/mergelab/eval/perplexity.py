"""Perplexity of a corpus of texts, each fed as ``bos + tokens(text)``.

    nll        = - sum_items sum_t log p(x_t | x_<t) / (number of predicted tokens)
    perplexity = exp(nll)

The mean is over tokens of the whole split (a corpus-level perplexity, as in the usual
language-modelling benchmarks), not a mean of per-item perplexities. Without a bos token
the first token of each text is context only.
"""

from __future__ import annotations

import math
from typing import Any

from torch import nn
from transformers import PreTrainedTokenizerBase

from mergelab.errors import EvaluationError
from mergelab.eval.encoding import bos_ids, check_known_words, encode, pad_id
from mergelab.eval.loglik import PlannedScoreBatches
from mergelab.eval.task import Task


class PerplexityScorer:
    """Scores ``perplexity`` items; every text is tokenized once, at construction."""

    def __init__(
        self,
        task: Task,
        items: list[dict[str, Any]],
        tokenizer: PreTrainedTokenizerBase,
        *,
        batch_size: int | None,
        device: str,
    ) -> None:
        texts = [item["text"] for item in items]
        check_known_words(tokenizer, texts, task.name)
        self._task = task
        self._texts = texts
        self._seqs = [bos_ids(tokenizer) + ids for ids in encode(tokenizer, texts)]
        for text, seq in zip(texts, self._seqs, strict=True):
            if len(seq) < 2:
                raise EvaluationError(
                    f"task '{task.name}': text {text!r} gives no token to predict; "
                    "use longer texts or a tokenizer with a bos token"
                )
        self._counts = [len(seq) - 1 for seq in self._seqs]  # predicted tokens per text
        self._batches = PlannedScoreBatches(
            self._seqs,
            [1] * len(self._seqs),  # every token after bos is scored
            pad_id(tokenizer),
            batch_size=batch_size,
            device=device,
        )

    def metrics(self, model: nn.Module) -> dict[str, float]:
        """perplexity and nll (mean per token), primary first."""
        logprob = float(self._batches.logprobs(model).sum())
        nll = -logprob / sum(self._counts)
        totals = {"perplexity": math.exp(nll), "nll": nll}
        return {name: totals[name] for name in self._task.metric_names}

    def details(self, model: nn.Module) -> list[dict[str, Any]]:
        """Per item: text, number of predicted tokens, nll per token and perplexity."""
        rows = []
        for text, count, logprob in zip(
            self._texts, self._counts, self._batches.logprobs(model).tolist(), strict=True
        ):
            nll = -logprob / count
            rows.append({"text": text, "tokens": count, "nll": nll, "perplexity": math.exp(nll)})
        return rows
