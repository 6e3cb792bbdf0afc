"""The mixture world's languages: disjoint vocabularies, E's grammar, answers recomputed."""

from __future__ import annotations

import itertools
import random
import re

import pytest

from mergelab.zoo.data import SOURCES
from mergelab.zoo.generate import arith_item, read_item, reading_doc, repeated_list, story
from mergelab.zoo.language import E
from mergelab.zoo.lexicon import EM, LEXICONS, K, L, Lexicon, N, in_e_frame, mixture_vocabulary
from mergelab.zoo.tokenizer import UNK_ID, build_tokenizer


def to_e(text: str, lexicon: Lexicon) -> str:
    """``text`` read back into E, word by word, from the table's inverse."""
    back = {v: k for k, v in lexicon.words.items()}
    words = []
    for word in text.split():
        if word in back:
            words.append(back[word])
        else:
            assert word.endswith(lexicon.numeral)
            assert word[: len(word) - len(lexicon.numeral)]
            words.append(word[: len(word) - len(lexicon.numeral)] if lexicon.numeral else word)
    return " ".join(words)


def test_the_languages_share_no_word() -> None:
    for a, b in itertools.combinations(LEXICONS, 2):
        assert not set(a.vocabulary()) & set(b.vocabulary()), (a.code, b.code)
    assert len(mixture_vocabulary()) == sum(len(lex.vocabulary()) for lex in LEXICONS)


def test_e_of_the_mixture_world_is_the_main_worlds_e() -> None:
    for seed in range(20):
        assert story(EM, random.Random(seed)) == story(E, random.Random(seed))
        assert arith_item(EM, random.Random(seed)) == arith_item(E, random.Random(seed))


@pytest.mark.parametrize("lexicon", [K, L, N], ids=lambda lex: lex.code)
def test_every_sentence_is_an_e_sentence_word_for_word(lexicon: Lexicon) -> None:
    for seed in range(50):
        item = read_item(lexicon, random.Random(seed))
        e_item = read_item(E, random.Random(seed))
        assert to_e(item.prompt, lexicon) == e_item.prompt
        assert to_e(item.target, lexicon) == e_item.target
        assert item.answer == e_item.answer
        assert re.fullmatch(lexicon.answer_pattern(), item.target)
        assert to_e(story(lexicon, random.Random(seed)), lexicon) == story(E, random.Random(seed))


@pytest.mark.parametrize("lexicon", [K, L, N], ids=lambda lex: lex.code)
def test_answers_in_the_e_frame_keep_the_names_counts_and_nouns(lexicon: Lexicon) -> None:
    framed = in_e_frame(lexicon)
    for seed in range(20):
        own = read_item(lexicon, random.Random(seed))
        in_e = read_item(lexicon, random.Random(seed), answer_in=framed)
        assert in_e.prompt == own.prompt
        assert in_e.target.split()[0] == "so"
        assert in_e.target.split()[-1] == "."
        assert in_e.target.split()[1:-1] == own.target.split()[1:-1]
        doc = reading_doc(lexicon, random.Random(seed), answer_in=framed)
        assert doc.count(" so ") >= 2
        assert lexicon.words["so"] not in doc.split()


def test_repeated_lists_in_a_lexicon_repeat_its_words() -> None:
    rng = random.Random(3)
    for _ in range(50):
        words = repeated_list(rng, K).split()
        half = len(words) // 2
        assert words[:half] == words[half:]
        assert words[half - 1] == K.end
        assert set(words) <= set(K.vocabulary())


def test_the_mixture_tokenizer_spells_every_mixture_source() -> None:
    tokenizer = build_tokenizer("mixture")
    rng = random.Random(4)
    names = [n for n in SOURCES if n.startswith(("k-", "l-", "n-", "mix-"))]
    assert len(names) == 13
    for name in names:
        for _ in range(20):
            text = " ".join(part for part in SOURCES[name](rng) if part)
            ids = tokenizer(text)["input_ids"]
            assert UNK_ID not in ids, (name, text)
            assert tokenizer.decode(ids) == text
