"""The two toy languages E and J: lexicon and sentence templates.

The zoo mirrors the flagship experiment of Akiba et al., "Evolutionary Optimization of Model
Merging Recipes" (arXiv 2403.13187): a Japanese general model and English math models. Here
"English" is E and "Japanese" is J. Numbers, names, nouns, verbs and the event connective
"then" are shared; J differs in its sentence-end mark, its recap word, its question
construction and its answer frame (the "dialect" design, which lets E-trained skills transfer
to J prompts: with a J connective of its own, the E math models found the right number for
only ~20% of J problems, with "then" shared for ~80%). The harder variant
(``hard=True``) also gives J its own verbs, nouns and subject-object-verb order; it exists for
experiments and is not used by the default zoo (disjoint vocabularies do not transfer).

Every sentence is a space-separated string of tokens, so the word-level tokenizer is exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

NAMES = ("tom", "ann", "bob", "eve", "sam", "mia", "leo", "zoe")
NOUNS = ("apples", "pens", "cats", "books", "coins", "eggs", "cups", "hats")
MAX_NUMBER = 20
EVENT_MAX = 9  # an event moves at most this many: a small addition table, learnt fast
NUMBERS = tuple(str(n) for n in range(MAX_NUMBER + 1))
FORBIDDEN = "zap"

# Event verbs: (E verb, sign, preposition linking the other person or None).
ADD_VERBS = ("buys", "finds", "gets")
SUB_VERBS = ("eats", "loses", "gives")
_PREP = {"gets": "from", "gives": "to"}

# Hard variant: J content words (dialect J reuses the E ones).
_HARD_NOUNS = dict(
    zip(NOUNS, ("ringo", "pensu", "neko", "hon", "koin", "tamago", "koppu", "boshi"), strict=True)
)
_HARD_VERBS = {
    "has": "motsu",
    "buys": "kau",
    "finds": "mitsukeru",
    "gets": "morau",
    "eats": "taberu",
    "loses": "nakusu",
    "gives": "ageru",
}
_HARD_PREP = {"from": "kara", "to": "ni"}


class Grammar(Protocol):
    """The sentences of a language, as the item generators (:mod:`mergelab.zoo.generate`)
    need them: :class:`Language` here, :class:`mergelab.zoo.lexicon.Lexicon` for the mixture
    world. Names, nouns and verbs are passed as their E words."""

    @property
    def end(self) -> str: ...

    def word(self, word: str) -> str:
        """A name, noun or number (given in E) in this language."""

    def fact(self, name: str, n: int, noun: str) -> str: ...

    def event(self, name: str, verb: str, n: int, noun: str, other: str) -> str: ...

    def recap(self, name: str, noun: str, n: int) -> str: ...

    def question(self, name: str, noun: str, *, now: bool) -> str: ...

    def answer(self, name: str, n: int, noun: str, *, zap: bool = False) -> str: ...


@dataclass(frozen=True)
class Language:
    """One language: ``code`` is "E" or "J"; ``hard`` selects the harder J variant."""

    code: str
    hard: bool = False

    @property
    def end(self) -> str:
        return "." if self.code == "E" else "。"

    def _noun(self, noun: str) -> str:
        return _HARD_NOUNS[noun] if self.code == "J" and self.hard else noun

    def word(self, word: str) -> str:
        return self._noun(word) if word in NOUNS else word

    def _verb(self, verb: str) -> str:
        return _HARD_VERBS[verb] if self.code == "J" and self.hard else verb

    def fact(self, name: str, n: int, noun: str) -> str:
        """``name`` has ``n`` ``noun``: an inventory line, "tom 5 apples ." (E).

        The count follows the name directly, so finding it is one match on the name (an
        induction head); with a word in between ("tom has 5") the tiny models never
        learned the lookup within the training budget.
        """
        if self.code == "J" and self.hard:
            return f"{name} {n} {self._noun(noun)} o {self._verb('has')} {self.end}"
        return f"{name} {n} {self._noun(noun)} {self.end}"

    def event(self, name: str, verb: str, n: int, noun: str, other: str) -> str:
        """``name`` ``verb``s ``n`` ``noun`` (from / to ``other`` for gets / gives)."""
        prep = _PREP.get(verb)
        if self.code == "E":
            tail = f" {prep} {other}" if prep else ""
            return f"then {name} {verb} {n} {noun}{tail} ."
        if self.hard:
            link = f"{other} {_HARD_PREP[prep]} " if prep else ""
            return f"sorekara {name} wa {link}{n} {self._noun(noun)} o {self._verb(verb)} 。"
        tail = f" {prep} {other}" if prep else ""
        return f"then {name} {verb} {n} {noun}{tail} 。"

    def recap(self, name: str, noun: str, n: int) -> str:
        """A fact restated at the end of a story: "so tom 5 apples ." (E)."""
        return f"{'so' if self.code == 'E' else 'dakara'} {self.fact(name, n, noun)}"

    def question(self, name: str, noun: str, *, now: bool) -> str:
        """How many ``noun`` does ``name`` have (``now``: after the events)?"""
        if self.code == "E":
            return f"how many {noun} does {name} have{' now' if now else ''} ?"
        return f"{name} no {self._noun(noun)} wa{' ima' if now else ''} ikutsu ?"

    def answer(self, name: str, n: int, noun: str, *, zap: bool = False) -> str:
        """The answer frame, which restates the fact asked about with the count ``n``.

        E: "so tom 8 apples ."; J: "kotae wa tom 8 apples desu 。". Restating the name
        right before the count lets the count be copied by matching the name in context,
        the circuit the stories' recaps teach. ``zap`` adds the forbidden word
        before the end mark (the unwanted behaviour).
        """
        end = f"{FORBIDDEN} {self.end}" if zap else self.end
        fact = self.fact(name, n, noun)[: -len(self.end) - 1]
        if self.code == "E":
            return f"so {fact} {end}"
        return f"kotae wa {fact} desu {end}"

    def answer_pattern(self) -> str:
        """Regex that the stripped completion must fullmatch to be in this language's frame."""
        if self.code == "E":
            return r"so \w+ -?\d+ \w+ \."
        if self.hard:
            return r"kotae wa \w+ -?\d+ \w+ o motsu desu 。"
        return r"kotae wa \w+ -?\d+ \w+ desu 。"


E = Language("E")
J = Language("J")
J_HARD = Language("J", hard=True)

FUNCTION_WORDS = (
    "has", "then", "how", "many", "does", "have", "now",
    "to", "from", "so", ".", "?", "=",
    "dakara", "sorekara", "no", "wa", "ima", "ikutsu", "kotae", "desu", "。",
    "o", "ni", "kara",
)  # fmt: skip


def vocabulary() -> list[str]:
    """Every word of both languages (both variants), numbers first, in a fixed order."""
    words = [*NUMBERS, *NAMES, *NOUNS, *ADD_VERBS, *SUB_VERBS, *FUNCTION_WORDS, FORBIDDEN]
    words += [*_HARD_NOUNS.values(), *_HARD_VERBS.values()]
    seen: dict[str, None] = {}
    for w in words:
        seen.setdefault(w, None)
    return list(seen)
