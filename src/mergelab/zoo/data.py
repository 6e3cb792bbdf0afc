"""Training data of the zoo: named sources of token sequences and seeded mixes of them.

A source yields ``(context, target)`` strings: the loss is taken on ``target`` and the final
``<eos>`` only (a question's answer), or on every token when ``context`` is empty (plain
text). A sequence is ``<bos> context target <eos>``, the layout the evaluators feed prompts in.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping

import torch

from mergelab.zoo.generate import (
    Item,
    arith_item,
    parallel,
    read_item,
    reading_doc,
    repeated_list,
    story,
)
from mergelab.zoo.language import E, J
from mergelab.zoo.lexicon import LEXICONS, K, L, Lexicon, N, in_e_frame
from mergelab.zoo.tokenizer import BOS_ID, EOS_ID, PAD_ID

Pair = tuple[str, str]


def _qa(make: Callable[[random.Random], Item]) -> Callable[[random.Random], Pair]:
    def source(rng: random.Random) -> Pair:
        item = make(rng)
        return item.prompt, item.target

    return source


SOURCES: dict[str, Callable[[random.Random], Pair]] = {
    "e-story": lambda rng: ("", story(E, rng)),
    "j-story": lambda rng: ("", story(J, rng)),
    "parallel": lambda rng: ("", parallel(E, J, rng)),
    "repeat": lambda rng: ("", repeated_list(rng)),
    "e-read-doc": lambda rng: ("", reading_doc(E, rng)),
    "e-read": _qa(lambda rng: read_item(E, rng)),
    "j-read": _qa(lambda rng: read_item(J, rng)),
    "j-read-e": _qa(lambda rng: read_item(J, rng, answer_in=E)),
    "e-read-zap": _qa(lambda rng: read_item(E, rng, zap=True)),
    "e-arith": _qa(lambda rng: arith_item(E, rng)),
    "e-arith-2": _qa(lambda rng: arith_item(E, rng, events=rng.choice((1, 2)))),
    "j-arith": _qa(lambda rng: arith_item(J, rng)),
    # the mixture world (mergelab.zoo.lexicon): stories, questions answered in E (the base's
    # view) or in their own frame (the experts'), and repeated lists in any of its languages
    "mix-repeat": lambda rng: ("", repeated_list(rng, rng.choice(LEXICONS))),
}


def _mixture_sources(lexicon: Lexicon) -> dict[str, Callable[[random.Random], Pair]]:
    code = lexicon.code.lower()
    framed_e = in_e_frame(lexicon)
    return {
        f"{code}-story": lambda rng: ("", story(lexicon, rng)),
        f"{code}-read-doc": lambda rng: ("", reading_doc(lexicon, rng, answer_in=framed_e)),
        f"{code}-read": _qa(lambda rng: read_item(lexicon, rng)),
        f"{code}-read-e": _qa(lambda rng: read_item(lexicon, rng, answer_in=framed_e)),
    }


for _lexicon in (K, L, N):
    SOURCES.update(_mixture_sources(_lexicon))


def encode(pair: Pair, vocab: Mapping[str, int]) -> tuple[list[int], list[bool]]:
    """Token ids of ``<bos> context target <eos>`` and, per position, whether it is a target.

    ``loss[t]`` says whether token ``t`` is predicted (from position ``t - 1``) in the loss.
    """
    context, target = pair
    ctx = [vocab[w] for w in context.split()]
    tgt = [vocab[w] for w in target.split()]
    ids = [BOS_ID, *ctx, *tgt, EOS_ID]
    loss = [False] * (1 + len(ctx)) + [True] * (len(tgt) + 1)
    return ids, loss


def sample_mix(
    mix: Mapping[str, float],
    n: int,
    seed: int,
    exclude: set[str],
) -> list[Pair]:
    """``n`` pairs drawn from the weighted ``mix`` of sources, never a prompt in ``exclude``."""
    rng = random.Random(f"mix:{seed}")
    names = sorted(mix)
    weights = [mix[k] for k in names]
    out: list[Pair] = []
    while len(out) < n:
        pair = SOURCES[rng.choices(names, weights)[0]](rng)
        if (pair[0] or pair[1]) not in exclude:
            out.append(pair)
    return out


def batches(
    pairs: list[Pair],
    vocab: Mapping[str, int],
    batch_size: int,
    steps: int,
    seed: int,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``steps`` right-padded batches ``(ids (B, T), loss_mask (B, T))`` in a seeded order."""
    encoded = [encode(p, vocab) for p in pairs]
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        pick = torch.randint(len(encoded), (batch_size,), generator=gen).tolist()
        rows = [encoded[i] for i in pick]
        width = max(len(ids) for ids, _ in rows)
        ids = torch.full((batch_size, width), PAD_ID, dtype=torch.long)
        mask = torch.zeros((batch_size, width), dtype=torch.bool)
        for r, (row_ids, row_loss) in enumerate(rows):
            ids[r, : len(row_ids)] = torch.tensor(row_ids)
            mask[r, : len(row_loss)] = torch.tensor(row_loss)
        out.append((ids, mask))
    return out
