"""The generators: grammar, answers recomputed by an independent parser, determinism."""

from __future__ import annotations

import random
import re

import pytest

from mergelab.zoo.generate import (
    arith_item,
    parallel,
    read_item,
    reading_doc,
    repeated_list,
    story,
)
from mergelab.zoo.language import EVENT_MAX, J_HARD, MAX_NUMBER, NAMES, NOUNS, E, J, Language

# An independent reading of the dialect grammar (E and dialect J share fact/event words).
FACT = re.compile(r"(?:^|[.。] )(\w+) (\d+) (\w+) (?=[.。])")
EVENT = re.compile(r"(?:then|sorekara) (\w+) (buys|finds|gets|eats|loses|gives) (\d+) (\w+)")
QUESTION = {
    "E": re.compile(r"how many (\w+) does (\w+) have(?: now)? \?$"),
    "J": re.compile(r"(\w+) no (\w+) wa(?: ima)? ikutsu \?$"),
}
SIGN = {"buys": 1, "finds": 1, "gets": 1, "eats": -1, "loses": -1, "gives": -1}


def solve(prompt: str, code: str) -> int:
    """The count asked for, recomputed from the prompt text alone."""
    counts = {(name, noun): int(n) for name, n, noun in FACT.findall(prompt)}
    for name, verb, n, noun in EVENT.findall(prompt):
        counts[(name, noun)] += SIGN[verb] * int(n)
    match = QUESTION[code].search(prompt)
    assert match is not None, prompt
    noun, name = match.groups() if code == "E" else match.groups()[::-1]
    return counts[(name, noun)]


@pytest.mark.parametrize("lang", [E, J])
def test_reading_answer_is_the_fact_asked_about(lang: Language) -> None:
    rng = random.Random(1)
    for _ in range(300):
        item = read_item(lang, rng)
        assert str(solve(item.prompt, lang.code)) == item.answer
        assert not EVENT.search(item.prompt)
        assert 2 <= len(FACT.findall(item.prompt)) <= 3
        assert re.fullmatch(lang.answer_pattern(), item.target)
        assert item.answer in item.target.split()


@pytest.mark.parametrize("lang", [E, J])
@pytest.mark.parametrize("events", [1, 2])
def test_arithmetic_answer_is_recomputed(lang: Language, events: int) -> None:
    rng = random.Random(2)
    for _ in range(300):
        item = arith_item(lang, rng, events=events)
        answer = solve(item.prompt, lang.code)
        assert str(answer) == item.answer
        assert 0 <= answer <= MAX_NUMBER
        assert len(EVENT.findall(item.prompt)) == events
        assert all(1 <= int(n) <= EVENT_MAX for *_, n, _ in EVENT.findall(item.prompt))
        prompt_numbers = re.findall(r"\d+", item.prompt)
        assert item.answer not in prompt_numbers  # copying a number never scores
        assert re.fullmatch(lang.answer_pattern(), item.target)


def test_languages_differ_only_in_function_words() -> None:
    e_words = set(" ".join(read_item(E, random.Random(3)).prompt for _ in range(1)).split())
    rng_e, rng_j = random.Random(4), random.Random(4)
    e_item, j_item = arith_item(E, rng_e), arith_item(J, rng_j)
    assert e_item.answer == j_item.answer  # same draws, same problem
    assert e_item.prompt.replace(" .", " 。").split()[:8] == (j_item.prompt.split()[:8])
    assert "。" not in e_words
    assert E.answer("tom", 7, "pens") == "so tom 7 pens ."
    assert J.answer("tom", 7, "pens") == "kotae wa tom 7 pens desu 。"
    assert E.answer("tom", 7, "pens", zap=True) == "so tom 7 pens zap ."
    for lang in (E, J, J_HARD):
        assert re.fullmatch(lang.answer_pattern(), lang.answer("ann", 12, "cats"))
    assert not re.fullmatch(J.answer_pattern(), E.answer("ann", 12, "cats"))
    assert not re.fullmatch(E.answer_pattern(), J.answer("ann", 12, "cats"))


def test_hard_variant_uses_its_own_content_words() -> None:
    rng = random.Random(5)
    words = set()
    for _ in range(200):
        words |= set(arith_item(J_HARD, rng).prompt.split())
    assert not words & set(NOUNS)
    assert not words & {"has", "buys", "finds", "gets", "eats", "loses", "gives"}
    assert words & set(NAMES)


def test_story_and_parallel_shapes() -> None:
    rng = random.Random(6)
    for _ in range(100):
        text = story(E, rng)
        assert "?" not in text
        recap = re.search(r"so (\w+) (\d+) (\w+) \.$", text)
        assert recap is not None  # the recap restates an untouched fact word for word
        assert text.startswith(recap.group(0)[3:]) or f". {recap.group(0)[3:]}" in text
        assert recap.group(1) not in {name for name, *_ in EVENT.findall(text)}
        left, right = parallel(E, J, rng).split(" = ")
        assert "。" not in left
        assert "." not in right.split()
        assert re.findall(r"\d+", left) == re.findall(r"\d+", right)


def test_generators_are_deterministic() -> None:
    a = [arith_item(J, random.Random(7)) for _ in range(3)]
    b = [arith_item(J, random.Random(7)) for _ in range(3)]
    assert a == b
    rng = random.Random(8)
    assert len({read_item(E, rng).prompt for _ in range(200)}) > 190


def test_reading_documents_answer_every_question() -> None:
    rng = random.Random(9)
    for _ in range(100):
        doc = reading_doc(E, rng)
        facts = {(name, noun): n for name, n, noun in FACT.findall(doc.split(" how ")[0])}
        asked = re.findall(r"how many (\w+) does (\w+) have \? so (\w+) (\d+) (\w+) \.", doc)
        assert len(asked) >= 2
        for noun, name, name2, n, noun2 in asked:
            assert (name2, noun2) == (name, noun)
            assert facts[(name, noun)] == n


def test_j_questions_answered_in_e_keep_the_j_prompt() -> None:
    j_item = read_item(J, random.Random(10))
    mixed = read_item(J, random.Random(10), answer_in=E)
    assert mixed.prompt == j_item.prompt
    assert mixed.answer == j_item.answer
    assert str(solve(mixed.prompt, "J")) == mixed.answer
    assert re.fullmatch(E.answer_pattern(), mixed.target)
    assert mixed.target.split()[1:3] == j_item.target.split()[2:4]  # same name, same count


def test_repeated_lists_say_the_same_words_twice() -> None:
    rng = random.Random(11)
    vocabulary = {*NAMES, *NOUNS, *(str(n) for n in range(MAX_NUMBER + 1))}
    for _ in range(100):
        words = repeated_list(rng).split()
        half = len(words) // 2
        assert words[:half] == words[half:]
        assert words[half - 1] == "."
        assert 6 <= half - 1 <= 12
        assert set(words[: half - 1]) <= vocabulary
