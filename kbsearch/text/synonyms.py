"""Synonyms and acronyms for the keyword (BM25) leg, matched on analysed terms.

Admins curate sets in the database (``kbsearch.search.models.SynonymSet``); this module turns them
into rules and applies them to a query's terms. It works on the terms ``kbsearch.text.analysis``
produces for queries (``query_terms``), never on raw text, for two reasons:

* a phrase matches the way documents are indexed: "Requirements" matches "requirement", and
  ``产品需求文档`` is the bigram run ``产品 品需 需求 求文 文档`` whether it stands alone or sits
  inside ``这个产品需求文档的模板``, so a Chinese expansion finds Chinese documents analysed alike;
* the expansion handed to the BM25 leg is already a list of index terms, which every backend
  scores as it scores the query's own terms.

A rule fires when its phrase occurs in the query's terms as a contiguous run. Its alternatives
become extra BM25 terms with a weight below the query's own (``expansion_weights``): an
alternative as a whole weighs at most ``weight`` times the run it stands for, spread evenly over
its terms, so a three-word expansion of a one-word acronym cannot outscore the acronym by having
three words, and the five bigrams of ``产品需求文档`` standing in for "PRD" count as one word.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from kbsearch.text.analysis import query_terms
from kbsearch.text.language import query_languages

EQUIVALENT = "equivalent"
ONE_WAY = "one_way"
SetKind = Literal["equivalent", "one_way"]

# A query gets at most this many extra terms, however many sets match it: the BM25 leg reads one
# posting list per term, and a set with dozens of members should not make a query dozens of
# times slower.
MAX_EXPANSION_TERMS = 64


@dataclass(frozen=True)
class SynonymSetSpec:
    """One curated set as stored: raw phrases, analysed when the table is built.

    ``equivalent``: every phrase in ``terms`` stands for every other. ``one_way``: each phrase in
    ``terms`` (an acronym, say) brings in every phrase of ``expansions``, not the reverse.
    ``language``: the set applies only to queries written in it (``query_languages``); empty for all.
    """

    kind: SetKind
    terms: tuple[str, ...]
    expansions: tuple[str, ...] = ()
    language: str = ""


@dataclass(frozen=True)
class SynonymRule:
    phrase: tuple[str, ...]
    alternatives: tuple[tuple[str, ...], ...]
    language: str = ""


@dataclass(frozen=True)
class Expansion:
    """A rule that fired: the run of query terms it matched and one alternative for it."""

    matched: tuple[str, ...]
    alternative: tuple[str, ...]


def phrase_terms(text: str) -> tuple[str, ...]:
    """A phrase as the query analyzer sees it (the form rules match and expand with)."""
    return tuple(query_terms(text))


def rules_from_set(spec: SynonymSetSpec) -> list[SynonymRule]:
    """The rules one set gives; phrases with no searchable term are left out."""
    sources = [terms for terms in dict.fromkeys(phrase_terms(text) for text in spec.terms) if terms]
    if spec.kind == EQUIVALENT:
        targets = sources
    elif spec.kind == ONE_WAY:
        targets = [terms for terms in dict.fromkeys(phrase_terms(text) for text in spec.expansions) if terms]
    else:
        raise ValueError(f"unknown synonym set kind {spec.kind!r}")
    rules = []
    for phrase in sources:
        alternatives = tuple(target for target in targets if target != phrase)
        if alternatives:
            rules.append(SynonymRule(phrase=phrase, alternatives=alternatives, language=spec.language))
    return rules


class SynonymTable:
    """Compiled rules, looked up by the first term of their phrase; ``weight`` is what an
    alternative weighs against the query terms it stands for (``expansion_weights``)."""

    def __init__(self, sets: Iterable[SynonymSetSpec] = (), *, weight: float = 0.5) -> None:
        self.weight = weight
        self._by_first: dict[str, list[SynonymRule]] = {}
        self.rule_count = 0
        for spec in sets:
            for rule in rules_from_set(spec):
                self._by_first.setdefault(rule.phrase[0], []).append(rule)
                self.rule_count += 1

    def __bool__(self) -> bool:
        return self.rule_count > 0

    def expand(self, terms: Sequence[str], languages: frozenset[str]) -> list[Expansion]:
        """Every alternative of every rule whose phrase occurs in ``terms``, in query order.

        ``languages``: the query's (``query_languages``); a rule with a language fires only for
        queries in it.
        """
        found: list[Expansion] = []
        for start, term in enumerate(terms):
            for rule in self._by_first.get(term, ()):
                if rule.language and rule.language not in languages:
                    continue
                if tuple(terms[start : start + len(rule.phrase)]) != rule.phrase:
                    continue
                found.extend(Expansion(matched=rule.phrase, alternative=alternative) for alternative in rule.alternatives)
        return found


def expansion_weights(
    terms: Sequence[str], expansions: Sequence[Expansion], weight: float
) -> tuple[tuple[str, float], ...]:
    """The extra BM25 terms and their weights (a query term weighs 1), in first-found order.

    Each alternative weighs at most ``weight`` times the run it replaces, spread over its own
    terms, and none of its terms more than ``weight``: "PRD" for "产品需求文档" (five bigrams)
    weighs ``weight``, not five times that, so a short acronym cannot outscore the phrase typed.
    A term the query already has keeps its full weight (it is not added); a term several
    alternatives bring in takes the largest of their weights, so overlapping sets do not add up.
    """
    if weight <= 0:
        return ()
    own = set(terms)
    weights: dict[str, float] = {}
    for expansion in expansions:
        share = weight * min(1.0, len(expansion.matched) / len(expansion.alternative))
        for term in expansion.alternative:
            if term in own:
                continue
            if term in weights:
                weights[term] = max(weights[term], share)
            elif len(weights) < MAX_EXPANSION_TERMS:
                weights[term] = share
    return tuple(weights.items())


def expansion_languages(expansions: Sequence[Expansion]) -> frozenset[str]:
    """Languages the alternatives can match lexically (the fusion's BM25 scale must include them)."""
    languages: set[str] = set()
    for expansion in expansions:
        languages |= query_languages(" ".join(expansion.alternative))
    return frozenset(languages)
