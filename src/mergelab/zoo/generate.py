"""Item generators of the toy world: reading questions, arithmetic word problems, stories,
parallel E/J sentences.

Every generator draws from a ``random.Random`` it is given, so a (seed, stream name) pair
fixes its output. A reading question lists two or three facts and asks about one of them;
an arithmetic problem states a fact, a distractor fact and one or two events, and asks for
the count after the events. Arithmetic answers never appear among the prompt's numbers, so
copying a number from the prompt never scores (the J model's J-arith score stays near zero).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from mergelab.zoo.language import (
    ADD_VERBS,
    EVENT_MAX,
    MAX_NUMBER,
    NAMES,
    NOUNS,
    SUB_VERBS,
    E,
    Grammar,
)


@dataclass(frozen=True)
class Item:
    """A prompt, its reference completion ``target`` and the answer number as a string."""

    prompt: str
    target: str
    answer: str


def _pairs(rng: random.Random, k: int) -> list[tuple[str, str]]:
    """``k`` (name, noun) pairs with distinct names (a name keys one fact)."""
    return [(name, rng.choice(NOUNS)) for name in rng.sample(NAMES, k)]


def _other(rng: random.Random, name: str) -> str:
    return rng.choice([n for n in NAMES if n != name])


def read_item(
    lang: Grammar, rng: random.Random, *, zap: bool = False, answer_in: Grammar | None = None
) -> Item:
    """Two or three facts, then a question about one of them; answer = that fact's number.

    ``answer_in`` frames the answer in another language (a J question answered in E is the
    base's pretraining view of J questions: it learns to answer them, in its own language).
    """
    pairs = _pairs(rng, rng.choice((2, 3)))
    counts = [rng.randint(0, MAX_NUMBER) for _ in pairs]
    ask = rng.randrange(len(pairs))
    facts = [lang.fact(name, n, noun) for (name, noun), n in zip(pairs, counts, strict=True)]
    name, noun = pairs[ask]
    prompt = " ".join([*facts, lang.question(name, noun, now=False)])
    framed = answer_in or lang
    return Item(prompt, framed.answer(name, counts[ask], noun, zap=zap), str(counts[ask]))


def arith_item(lang: Grammar, rng: random.Random, *, events: int = 1) -> Item:
    """A fact, a distractor fact and ``events`` events on the first fact; answer = the count.

    count = a + sum(+b for buys/finds/gets, -b for eats/loses/gives), kept in [0, MAX_NUMBER]
    after every event, never equal to a number in the prompt, and 1 <= b <= EVENT_MAX.
    """
    while True:
        (name, noun), (d_name, d_noun) = _pairs(rng, 2)
        a = rng.randint(0, MAX_NUMBER)
        count, numbers, sentences = a, [a], []
        ok = True
        for _ in range(events):
            verb = rng.choice(ADD_VERBS + SUB_VERBS)
            room = MAX_NUMBER - count if verb in ADD_VERBS else count
            if room < 1:
                ok = False
                break
            b = rng.randint(1, min(room, EVENT_MAX))
            count += b if verb in ADD_VERBS else -b
            numbers.append(b)
            sentences.append(lang.event(name, verb, b, noun, _other(rng, name)))
        d = rng.randint(0, MAX_NUMBER)
        numbers.append(d)
        if not ok or count in numbers:
            continue
        facts = [lang.fact(name, a, noun), lang.fact(d_name, d, d_noun)]
        rng.shuffle(facts)
        prompt = " ".join([*facts, *sentences, lang.question(name, noun, now=True)])
        return Item(prompt, lang.answer(name, count, noun), str(count))


def story(lang: Grammar, rng: random.Random) -> str:
    """Plain text: facts, one or two events, then recaps of untouched facts (no question).

    A recap ("so tom has 5 apples .") repeats a randomly chosen fact that no event changed,
    word for word, which rewards copying a count found by matching the name in context:
    the retrieval skill every question needs.
    """
    pairs = _pairs(rng, 3)
    counts = [rng.randint(0, MAX_NUMBER) for _ in pairs]
    sentences = [lang.fact(name, n, noun) for (name, noun), n in zip(pairs, counts, strict=True)]
    moved = rng.randrange(len(pairs))
    name, noun = pairs[moved]
    for _ in range(rng.randint(1, 2)):
        verb = rng.choice(ADD_VERBS + SUB_VERBS)
        sentences.append(lang.event(name, verb, rng.randint(1, 9), noun, _other(rng, name)))
    kept = [k for k in range(len(pairs)) if k != moved]
    for k in rng.sample(kept, rng.randint(1, len(kept))):
        sentences.append(lang.recap(*pairs[k], counts[k]))
    return " ".join(sentences)


def reading_doc(lang: Grammar, rng: random.Random, *, answer_in: Grammar | None = None) -> str:
    """A passage followed by two or three questions, each with its answer (plain text);
    ``answer_in`` frames the answers in another language, as in :func:`read_item`."""
    framed = answer_in or lang
    pairs = _pairs(rng, rng.choice((2, 3)))
    counts = [rng.randint(0, MAX_NUMBER) for _ in pairs]
    parts = [lang.fact(name, n, noun) for (name, noun), n in zip(pairs, counts, strict=True)]
    for k in rng.sample(range(len(pairs)), rng.choice((2, len(pairs)))):
        name, noun = pairs[k]
        parts += [lang.question(name, noun, now=False), framed.answer(name, counts[k], noun)]
    return " ".join(parts)


def repeated_list(rng: random.Random, lang: Grammar = E) -> str:
    """A random list of names, counts and nouns, said twice: "tom 5 eve cats . tom 5 eve cats ."
    (in E; ``lang`` renders the words in another language).

    Only copying can predict the second half, which is what forms the lookup (induction)
    circuit that every question needs within a few hundred steps instead of thousands.
    """
    pool = (*NAMES, *NOUNS, *(str(n) for n in range(MAX_NUMBER + 1)))
    words = [lang.word(rng.choice(pool)) for _ in range(rng.randint(6, 12))]
    return " ".join([*words, lang.end, *words, lang.end])


def parallel(e: Grammar, j: Grammar, rng: random.Random) -> str:
    """One sentence in E, ``=``, the same sentence in J (facts, events, questions, answers)."""
    kind = rng.choice(("fact", "event", "question", "answer"))
    name, noun, n = rng.choice(NAMES), rng.choice(NOUNS), rng.randint(0, MAX_NUMBER)
    if kind == "fact":
        pair = (e.fact(name, n, noun), j.fact(name, n, noun))
    elif kind == "event":
        verb, other = rng.choice(ADD_VERBS + SUB_VERBS), _other(rng, name)
        pair = (e.event(name, verb, n, noun, other), j.event(name, verb, n, noun, other))
    elif kind == "question":
        now = rng.random() < 0.5
        pair = (e.question(name, noun, now=now), j.question(name, noun, now=now))
    else:
        pair = (e.answer(name, n, noun), j.answer(name, n, noun))
    return f"{pair[0]} = {pair[1]}"
