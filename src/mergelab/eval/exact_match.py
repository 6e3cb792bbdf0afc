"""Generative exact match: greedy completion, answer extraction, strict/lenient scoring.

The scoring rule follows the evolutionary-merge paper's MGSM-JA metric (Akiba et al. 2024,
arXiv 2403.13187): the last number in the completion must equal the reference ("lenient")
AND the completion must be in the target language, which here is a regex over the whole
completion (``format_pattern``) instead of a language identifier ("strict").

    completion = strip(decode(greedy tokens up to eos, skipping special tokens)
                       cut after the first stop string)
    lenient    = group 1 of the last ``answer_pattern`` match == answer.strip()
    format     = re.fullmatch(format_pattern, completion)
    strict     = lenient and format          (lenient when there is no format_pattern)
    forbidden  = re.search(forbidden_pattern, completion)
"""

from __future__ import annotations

import re
from typing import Any

from torch import nn
from transformers import PreTrainedTokenizerBase

from mergelab.eval.batching import batch_key, plan_batches
from mergelab.eval.encoding import bos_ids, check_known_words, encode, pad_id
from mergelab.eval.generate import PromptBatch, greedy_generate, prompt_batches
from mergelab.eval.task import DEFAULT_ANSWER_PATTERN, Task


class GenerateScorer:
    """Scores ``generate`` items; every text is tokenized once, at construction."""

    def __init__(
        self,
        task: Task,
        items: list[dict[str, Any]],
        tokenizer: PreTrainedTokenizerBase,
        *,
        batch_size: int | None,
        device: str,
    ) -> None:
        prompts = [item["prompt"] for item in items]
        check_known_words(tokenizer, prompts, task.name)
        self._task = task
        self._items = items
        self._tokenizer = tokenizer
        self._batch_size = batch_size
        self._device = device
        self._prompts = [bos_ids(tokenizer) + ids for ids in encode(tokenizer, prompts)]
        eos = tokenizer.eos_token_id
        self._eos_ids = set() if eos is None else {int(eos)}
        self._pad_id = pad_id(tokenizer)
        self._stop_ids = _stop_token_ids(tokenizer, task.stop)
        self._answer = re.compile(task.answer_pattern or DEFAULT_ANSWER_PATTERN)
        self._format = None if task.format_pattern is None else re.compile(task.format_pattern)
        self._forbidden = (
            None if task.forbidden_pattern is None else re.compile(task.forbidden_pattern)
        )
        self._batches: dict[tuple[int, float], list[PromptBatch]] = {}

    def metrics(self, model: nn.Module) -> dict[str, float]:
        """strict, lenient (+ format, forbidden_rate when configured), primary first."""
        pairs = zip(self.completions(model), self._items, strict=True)
        grades = [self._grade(completion, item) for completion, item in pairs]
        n = len(grades)
        totals = {
            "strict": sum(g["strict"] for g in grades) / n,
            "lenient": sum(g["lenient"] for g in grades) / n,
            "format": sum(g["format"] for g in grades) / n,
            "forbidden_rate": sum(g["forbidden"] for g in grades) / n,
        }
        return {name: float(totals[name]) for name in self._task.metric_names}

    def details(self, model: nn.Module) -> list[dict[str, Any]]:
        """Per item: prompt, answer, completion, extracted answer and each verdict."""
        return [
            {"prompt": item["prompt"], "answer": item["answer"], **self._grade(c, item)}
            for c, item in zip(self.completions(model), self._items, strict=True)
        ]

    def completions(self, model: nn.Module) -> list[str]:
        """The cleaned greedy completion of every item, in item order."""
        generated = greedy_generate(
            model,
            self._prompt_batches(model),
            max_new_tokens=self._task.new_tokens,
            eos_ids=self._eos_ids,
            stop_ids=self._stop_ids,
        )
        texts = self._tokenizer.batch_decode(
            [generated[i] for i in range(len(self._items))], skip_special_tokens=True
        )
        return [_cut_at_stop(text, self._task.stop).strip() for text in texts]

    def _prompt_batches(self, model: nn.Module) -> list[PromptBatch]:
        lengths = [len(p) for p in self._prompts]
        key = batch_key(
            model,
            self._batch_size,
            self._device,
            seq_len=max(lengths) + self._task.new_tokens,
            n_rows=len(lengths),
            logit_positions=1,
        )
        if key not in self._batches:
            plan = plan_batches(lengths, key[0], call_tokens=key[1], calls=self._task.new_tokens)
            self._batches[key] = prompt_batches(self._prompts, plan, self._pad_id, self._device)
        return self._batches[key]

    def _grade(self, completion: str, item: dict[str, Any]) -> dict[str, Any]:
        extracted = _extract(self._answer, completion)
        lenient = extracted is not None and extracted.strip() == item["answer"].strip()
        formatted = self._format is None or self._format.fullmatch(completion) is not None
        return {
            "completion": completion,
            "extracted": extracted,
            "lenient": lenient,
            "strict": lenient and formatted,
            "format": formatted,
            "forbidden": self._forbidden is not None
            and self._forbidden.search(completion) is not None,
        }


def _extract(pattern: re.Pattern[str], completion: str) -> str | None:
    """Group 1 (or the whole match without groups) of the last match, or None."""
    matches = list(pattern.finditer(completion))
    if not matches:
        return None
    return matches[-1].group(1) if pattern.groups else matches[-1].group(0)


def _cut_at_stop(text: str, stops: list[str]) -> str:
    """``text`` up to and including the stop string that starts first (shortest on ties)."""
    found = [(text.find(s), len(s)) for s in stops if s in text]
    if not found:
        return text
    start, length = min(found)
    return text[: start + length]


def _stop_token_ids(tokenizer: PreTrainedTokenizerBase, stops: list[str]) -> set[int]:
    """Ids of tokens whose own text contains a stop string (they end a row early).

    A stop string spread over several tokens still cuts the completion (``_cut_at_stop``);
    it only does not end generation early.
    """
    if not stops:
        return set()
    pieces = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
    return {i for i, piece in enumerate(pieces) if any(s in piece for s in stops)}
