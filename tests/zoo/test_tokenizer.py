"""The zoo tokenizer: a real fast tokenizer that round-trips every zoo sentence."""

from __future__ import annotations

import random
from pathlib import Path

from transformers import AutoTokenizer

from mergelab.zoo.generate import arith_item, parallel, read_item, story
from mergelab.zoo.language import J_HARD, E, J, vocabulary
from mergelab.zoo.tasks import TASK_DEFS, generate_tasks
from mergelab.zoo.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID, WORLDS, build_tokenizer


def test_saved_tokenizer_loads_with_autotokenizer(tmp_path: Path) -> None:
    build_tokenizer().save_pretrained(tmp_path)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    assert tok.is_fast
    assert (tok.pad_token_id, tok.unk_token_id, tok.bos_token_id, tok.eos_token_id) == (
        PAD_ID,
        UNK_ID,
        BOS_ID,
        EOS_ID,
    )
    assert len(tok) == 4 + len(vocabulary())
    text = "tom 5 apples 。 bob no pens wa ikutsu ?"
    ids = tok(text)["input_ids"]
    assert len(ids) == len(text.split())  # one token per word, no special tokens added
    assert tok.decode(ids) == text
    assert tok("tom 5 blorp")["input_ids"][-1] == UNK_ID


def test_round_trip_of_every_generator() -> None:
    tok = build_tokenizer()
    rng = random.Random(0)
    texts = []
    for lang in (E, J, J_HARD):
        for _ in range(50):
            item = arith_item(lang, rng, events=2)
            texts += [item.prompt + " " + item.target, read_item(lang, rng, zap=True).target]
            texts.append(story(lang, rng))
    texts += [parallel(E, J, rng) for _ in range(50)]
    for text in texts:
        ids = tok(text)["input_ids"]
        assert UNK_ID not in ids
        assert tok.decode(ids) == text


def test_every_task_token_is_in_its_worlds_vocabulary() -> None:
    vocabs = {world: set(build_tokenizer(world).get_vocab()) for world in WORLDS}
    for name, splits in generate_tasks().items():
        vocab = vocabs[TASK_DEFS[name].world]
        for items in splits.values():
            for item in items:
                for key in ("prompt", "target", "text", "answer"):
                    assert set(item.get(key, "").split()) <= vocab
