"""Pre-tokenization of task text, done once when an evaluator is built.

Inputs are fed as ``bos + tokens(text)`` with no eos, like the zoo's training data. A
continuation (a choice) is tokenized the way lm-evaluation-harness does it: encode
``context + " " + continuation`` whole and keep the tokens after the context's, so
merges across the boundary follow the tokenizer's own rules.
"""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

from mergelab.errors import EvaluationError

_MAX_NAMED = 8


def bos_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """``[bos]`` when the tokenizer has a bos token, else ``[]``."""
    bos = tokenizer.bos_token_id
    return [] if bos is None else [int(bos)]


def pad_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The id used for padding (pad, else eos, else 0); padded positions are masked out."""
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    return 0


def encode(tokenizer: PreTrainedTokenizerBase, texts: list[str]) -> list[list[int]]:
    """Token ids of each text, without special tokens (one batched tokenizer call)."""
    if not texts:
        return []
    ids: list[list[int]] = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return ids


def join_continuation(context: str, continuation: str) -> tuple[str, str]:
    """(context, context + delimiter + continuation): one space unless one side has it.

    Trailing whitespace of the context moves to the continuation, as in lm-eval.
    """
    stripped = context.rstrip()
    spaces = context[len(stripped) :]
    delimiter = "" if spaces or continuation[:1].isspace() or not stripped else " "
    return stripped, stripped + spaces + delimiter + continuation


def encode_continuations(
    tokenizer: PreTrainedTokenizerBase, pairs: list[tuple[str, str]]
) -> list[tuple[list[int], list[int]]]:
    """(context ids, continuation ids) per (context, continuation) pair; bos not included."""
    joined = [join_continuation(context, cont) for context, cont in pairs]
    contexts = encode(tokenizer, [context for context, _ in joined])
    wholes = encode(tokenizer, [whole for _, whole in joined])
    return [(ctx, whole[len(ctx) :]) for ctx, whole in zip(contexts, wholes, strict=True)]


def check_known_words(tokenizer: PreTrainedTokenizerBase, texts: list[str], task: str) -> None:
    """EvaluationError naming the first words of ``texts`` the tokenizer maps to unk."""
    missing = unknown_words(tokenizer, texts)
    if missing:
        raise EvaluationError(
            f"the model's tokenizer lacks task tokens {missing} (task '{task}'); "
            "this task needs a tokenizer that knows them"
        )


def unknown_words(tokenizer: PreTrainedTokenizerBase, texts: list[str]) -> list[str]:
    """Distinct pieces of ``texts`` that tokenize to unk, in order of appearance (first 8)."""
    unk = tokenizer.unk_token_id
    if unk is None or not texts:
        return []
    found: list[str] = []
    if tokenizer.is_fast:
        batch = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
        for text, ids, offsets in zip(
            texts, batch["input_ids"], batch["offset_mapping"], strict=True
        ):
            for token, (start, end) in zip(ids, offsets, strict=True):
                if token == unk:
                    _add(found, text[start:end])
    else:
        for text in texts:
            for word in text.split():
                if unk in tokenizer.encode(word, add_special_tokens=False):
                    _add(found, word)
    return found[:_MAX_NAMED]


def _add(found: list[str], word: str) -> None:
    if word not in found:
        found.append(word)
