"""Aligning vocabularies: ``tokenizer_source`` base, a model, or the union of all inputs.

When the inputs' vocabularies differ, every model's embedding and output rows are re-indexed
to the output vocabulary. ``union`` keeps the tokenizer model's tokens first, in its order,
then appends the other models' new tokens in recipe order. Each output row is merged over
the models that have its token: with the recipe's method when the method's inputs are all
there, copied when one model has it, and averaged otherwise (for example a new token that
the base lacks, under a method that needs the base).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from mergelab import arch
from mergelab.checkpoint import Checkpoint
from mergelab.errors import PlanError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VocabPlan:
    """The output vocabulary and, per model, which of its rows feeds each output row."""

    tokens: list[str]
    rows: int
    row_maps: dict[int, torch.Tensor]  # model index -> LongTensor [rows], -1 = token absent
    tokenizer_model: int
    added_tokens: list[str]


def load_vocab(path: Path) -> dict[str, int] | None:
    """The token -> id map of the tokenizer saved in ``path``, or None without one."""
    if not any((path / f).exists() for f in ("tokenizer.json", "tokenizer_config.json")):
        return None
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError) as exc:
        log.warning("could not load the tokenizer in %s: %s", path, exc)
        return None
    return dict(tokenizer.get_vocab())


def _embedding_rows(ckpt: Checkpoint) -> int | None:
    for name, info in ckpt.tensors.items():
        if arch.is_vocab_tensor(name) and info.shape:
            return info.shape[0]
    return None


def plan_vocabulary(
    mode: str,
    refs: Sequence[str],
    checkpoints: Sequence[Checkpoint],
    *,
    tokenizer_model: int,
    explicit: bool,
    pad_to_multiple_of: int | None,
) -> VocabPlan | None:
    """A row re-indexing plan, or None when every input already shares the output rows."""
    rows = {i: _embedding_rows(c) for i, c in enumerate(checkpoints)}
    vocabs = {i: load_vocab(c.path) for i, c in enumerate(checkpoints)}
    known = {i: v for i, v in vocabs.items() if v is not None}
    same_rows = len({r for r in rows.values() if r is not None}) <= 1
    same_vocab = len({tuple(sorted(v.items())) for v in known.values()}) <= 1
    if mode != "union" and same_rows and same_vocab and pad_to_multiple_of is None:
        return None
    if not explicit and not (same_rows and same_vocab):
        differing = ", ".join(
            f"{refs[i]} ({len(known[i]) if i in known else rows[i]} tokens)" for i in rows
        )
        raise PlanError(
            f"the models' vocabularies differ: {differing}; set 'tokenizer_source: base' "
            "(keep the base vocabulary) or 'tokenizer_source: union' (all tokens)"
        )
    missing = [refs[i] for i in rows if i not in known]
    if missing:
        raise PlanError(
            f"aligning vocabularies needs every model's tokenizer, but {', '.join(missing)} "
            "has none; add tokenizer files or give models with identical vocabularies"
        )
    target = dict(sorted(known[tokenizer_model].items(), key=lambda kv: kv[1]))
    tokens = list(target)
    added: list[str] = []
    if mode == "union":
        for i in sorted(known):
            for token, _ in sorted(known[i].items(), key=lambda kv: kv[1]):
                if token not in target:
                    target[token] = len(tokens)
                    tokens.append(token)
                    added.append(token)
    own_rows = rows[tokenizer_model] or len(tokens)
    n_rows = max(len(tokens), own_rows) if not added else len(tokens)
    if pad_to_multiple_of:
        n_rows = -(-n_rows // pad_to_multiple_of) * pad_to_multiple_of
    row_maps = {}
    for i, vocab in known.items():
        limit = rows[i] or 0
        index = torch.full((n_rows,), -1, dtype=torch.long)
        for token, out_id in target.items():
            src = vocab.get(token)
            if src is not None and src < limit:
                index[out_id] = src
        if i == tokenizer_model:  # padding rows beyond the vocabulary keep their own rows
            for r in range(len(tokens), min(n_rows, limit)):
                index[r] = r
        row_maps[i] = index
    return VocabPlan(tokens, n_rows, row_maps, tokenizer_model, added)


MethodCall = Callable[[torch.Tensor | None, list[torch.Tensor], list[int]], torch.Tensor]


def merge_rows(
    plan: VocabPlan,
    base: tuple[int, torch.Tensor] | None,
    inputs: Sequence[tuple[int, torch.Tensor]],
    call: MethodCall,
    *,
    base_required: bool,
    min_models: int,
) -> torch.Tensor:
    """Merge vocabulary rows group by group (rows whose token the same models have).

    ``call(base_rows, input_rows, input_positions)`` runs the recipe's method on a subset of
    the inputs (``input_positions`` index into ``inputs``, for per-model parameters).
    """
    everyone = ([base] if base is not None else []) + list(inputs)
    width = everyone[0][1].shape[1:]
    dtype = everyone[0][1].dtype
    out = torch.zeros((plan.rows, *width), dtype=dtype)
    present = torch.stack([plan.row_maps[m] >= 0 for m, _ in everyone], dim=1)  # [rows, k]
    patterns, group_of_row = torch.unique(present, dim=0, return_inverse=True)
    offset = 1 if base is not None else 0
    for g, pattern in enumerate(patterns.tolist()):
        rows = (group_of_row == g).nonzero().squeeze(1)
        have = [j for j, p in enumerate(pattern) if p]
        if not have:
            continue
        gathered = [everyone[j][1][plan.row_maps[everyone[j][0]][rows]] for j in have]
        have_inputs = [j - offset for j in have if j >= offset]
        base_here = base is not None and pattern[0]
        if len(have_inputs) >= min_models and (base_here or not base_required):
            base_rows = gathered[0] if base_here else None
            input_rows = gathered[1:] if base_here else gathered
            out[rows] = call(base_rows, input_rows, have_inputs)
        elif len(gathered) == 1:
            out[rows] = gathered[0]
        else:
            out[rows] = torch.stack(gathered).mean(dim=0)
    return out
