"""The languages of the mixture world: E's grammar in four vocabularies.

A mixture of experts built from dense fine-tunes routes every token on its own, with routers
set from prompts. That works when the experts' domains differ token by token (a Japanese
expert, a code expert, an English chat expert) and fails when skills share their words, as
the dialects E and J of the main world do (``docs/moe.md`` has both measured). The mixture
world is of the first kind, for ``mergelab moe``: E (the main world's E, word for word) and
three more languages K, L and N, each with its own words and numerals (``5'``, ``5^``,
``5~``), laid out like E. Its base model is an E model: it reads and answers E, reads
stories in every language and answers K, L and N questions in E ("so kato 5' kapi ."), as
the main world's base answers J questions in E. Each expert learns, in its MLPs only, to
answer one language's questions in that language's own frame ("kso kato 5' kapi !").

A :class:`Lexicon` renders the main world's sentences (names, nouns and verbs given as their
E words) in its language, so the item generators of :mod:`mergelab.zoo.generate` serve every
language.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mergelab.zoo.language import (
    ADD_VERBS,
    FORBIDDEN,
    MAX_NUMBER,
    NAMES,
    NOUNS,
    SUB_VERBS,
)

# the E words every lexicon renders: names, nouns, verbs, then the function words below
_FUNCTION = ("then", "to", "from", "so", "how", "many", "does", "have", "now", ".", "?")
E_WORDS = (*NAMES, *NOUNS, *ADD_VERBS, *SUB_VERBS, *_FUNCTION)
_PREP = {"gets": "from", "gives": "to"}

_K_WORDS = (
    *("kato", "kira", "koda", "kemi", "kuno", "kaya", "kobi", "kesu"),  # names
    *("kapi", "kelo", "kimu", "koro", "kesa", "kudo", "kani", "kovi"),  # nouns
    *("kabu", "kifi", "koge", "keti", "kolo", "kigi"),  # buys finds gets eats loses gives
    *("kan", "kto", "kfu", "kso", "kuu", "kem", "kad", "kah", "kin", "!", "?!"),
)
_N_WORDS = (
    *("nari", "nesu", "nilo", "nobu", "nuka", "nate", "nemo", "niku"),
    *("napa", "nose", "nido", "namu", "nefo", "nivo", "nona", "nemi"),
    *("nabi", "nefi", "nige", "neta", "nolo", "nugi"),
    *("nan", "nto", "nfu", "nso", "nuu", "nem", "nad", "nah", "nin", "|", "?|"),
)
_L_WORDS = (
    *("lami", "lesu", "liro", "lobo", "lune", "lati", "lemo", "lika"),
    *("lupa", "lose", "lidi", "lamu", "lefo", "livo", "lona", "lemi"),
    *("labi", "lefi", "lige", "leta", "lolo", "lugi"),
    *("lan", "lto", "lfu", "lso", "luu", "lem", "lad", "lah", "lin", ";", "??"),
)


@dataclass(frozen=True)
class Lexicon:
    """One language of the mixture world: ``words`` maps each E word to this language's."""

    code: str
    words: dict[str, str] = field(hash=False)
    numeral: str = ""  # what follows a number's digits: K writes 5 as "5'"

    def _w(self, word: str) -> str:
        return self.words[word]

    def number(self, n: int) -> str:
        return f"{n}{self.numeral}"

    def word(self, word: str) -> str:
        return self.number(int(word)) if word.isdigit() else self._w(word)

    @property
    def end(self) -> str:
        return self._w(".")

    def fact(self, name: str, n: int, noun: str) -> str:
        return f"{self._w(name)} {self.number(n)} {self._w(noun)} {self.end}"

    def event(self, name: str, verb: str, n: int, noun: str, other: str) -> str:
        prep = _PREP.get(verb)
        tail = f" {self._w(prep)} {self._w(other)}" if prep else ""
        then, v, thing = self._w("then"), self._w(verb), self._w(noun)
        return f"{then} {self._w(name)} {v} {self.number(n)} {thing}{tail} {self.end}"

    def recap(self, name: str, noun: str, n: int) -> str:
        return f"{self._w('so')} {self.fact(name, n, noun)}"

    def question(self, name: str, noun: str, *, now: bool) -> str:
        how, many, does, have = (self._w(w) for w in ("how", "many", "does", "have"))
        when = f" {self._w('now')}" if now else ""
        return f"{how} {many} {self._w(noun)} {does} {self._w(name)} {have}{when} {self._w('?')}"

    def answer(self, name: str, n: int, noun: str, *, zap: bool = False) -> str:
        end = f"{FORBIDDEN} {self.end}" if zap else self.end
        return f"{self._w('so')} {self._w(name)} {self.number(n)} {self._w(noun)} {end}"

    def answer_pattern(self) -> str:
        so, numeral, end = (re.escape(t) for t in (self._w("so"), self.numeral, self.end))
        return rf"{so} \w+ -?\d+{numeral} \w+ {end}"

    def vocabulary(self) -> list[str]:
        """This language's numbers and words."""
        return [*(self.number(n) for n in range(MAX_NUMBER + 1)), *(self._w(w) for w in E_WORDS)]


EM = Lexicon("E", {w: w for w in E_WORDS})
K = Lexicon("K", dict(zip(E_WORDS, _K_WORDS, strict=True)), numeral="'")
L = Lexicon("L", dict(zip(E_WORDS, _L_WORDS, strict=True)), numeral="^")
N = Lexicon("N", dict(zip(E_WORDS, _N_WORDS, strict=True)), numeral="~")
LEXICONS = (EM, K, L, N)


def mixture_vocabulary() -> list[str]:
    """Every word of the mixture world (each language's numbers and words), in a fixed order."""
    seen: dict[str, None] = {}
    for lexicon in LEXICONS:
        for word in lexicon.vocabulary():
            seen.setdefault(word, None)
    return list(seen)


def in_e_frame(lexicon: Lexicon) -> Lexicon:
    """``lexicon`` with E's answer frame ("so", "."): how the mixture world's base, an E model,
    answers a question asked in another language (the names, numbers and nouns stay)."""
    return Lexicon(
        f"{lexicon.code}>E", {**lexicon.words, "so": "so", ".": "."}, numeral=lexicon.numeral
    )
