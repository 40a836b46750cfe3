"""Search configuration the admins curate: synonym and acronym sets for the keyword (BM25) leg.

Why here, in ``kbsearch.search``: the search use case is the only reader (``search_run`` expands
the BM25 leg with them) and the relevance app sits above it in the import layers, so a model
there could not be read by search. ``evaluate`` never reads them, so its figures stay those of the
models and the analyzer.

Every process caches the compiled sets (``kbsearch.search.synonyms``) and compares a revision
(``SynonymRevision``, one row bumped in the same transaction as every change) before each search,
so a change made in one web process reaches the others at their next search.
"""
from django.core.exceptions import ValidationError
from django.db import models

from kbsearch.text.language import CHINESE, ENGLISH, JAPANESE, KOREAN
from kbsearch.text.synonyms import EQUIVALENT, ONE_WAY, SynonymSetSpec, phrase_terms

MAX_PHRASES = 50
MAX_PHRASE_CHARACTERS = 200


def phrase_lines(text: str) -> tuple[str, ...]:
    return tuple(line.strip() for line in text.splitlines() if line.strip())


class SynonymSet(models.Model):
    """Phrases that mean the same (equivalent), or terms that bring in expansions (one-way)."""

    class Kind(models.TextChoices):
        EQUIVALENT = EQUIVALENT, "Equivalent: each phrase also finds the others"
        ONE_WAY = ONE_WAY, "One-way: the terms also find the expansions, not the reverse"

    class Language(models.TextChoices):
        ANY = "", "Any language"
        EN = ENGLISH, "English (queries in Latin script)"
        ZH = CHINESE, "Chinese"
        JA = JAPANESE, "Japanese"
        KO = KOREAN, "Korean"

    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.EQUIVALENT)
    terms = models.TextField(
        help_text="One phrase per line, e.g. PRD, product requirements document, 产品需求文档. For a one-way "
        "set: the acronyms or words that bring in the expansions."
    )
    expansions = models.TextField(
        blank=True, help_text="One-way sets only: one phrase per line, searched as well when a term above is."
    )
    language = models.CharField(
        max_length=8, blank=True, choices=Language.choices, default=Language.ANY,
        help_text="Apply only to queries written in this language.",
    )
    enabled = models.BooleanField(default=True)
    note = models.CharField(max_length=200, blank=True, help_text="Why the set exists (for other admins).")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["terms"]
        verbose_name = "synonym set"

    def __str__(self) -> str:
        terms = " = ".join(phrase_lines(self.terms))
        if self.kind == self.Kind.ONE_WAY:
            return f"{terms} -> {', '.join(phrase_lines(self.expansions))}"[:120]
        return terms[:120]

    def spec(self) -> SynonymSetSpec:
        return SynonymSetSpec(
            kind=self.kind, terms=phrase_lines(self.terms), expansions=phrase_lines(self.expansions), language=self.language
        )

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        terms, expansions = phrase_lines(self.terms), phrase_lines(self.expansions)
        for field, phrases in (("terms", terms), ("expansions", expansions)):
            if len(phrases) > MAX_PHRASES:
                errors.setdefault(field, []).append(f"At most {MAX_PHRASES} phrases.")
            for phrase in phrases:
                if len(phrase) > MAX_PHRASE_CHARACTERS:
                    errors.setdefault(field, []).append(f"{phrase[:40]}...: at most {MAX_PHRASE_CHARACTERS} characters.")
                elif not phrase_terms(phrase):
                    errors.setdefault(field, []).append(f"{phrase!r} has no searchable word.")
        if self.kind == self.Kind.EQUIVALENT:
            if len({phrase_terms(phrase) for phrase in terms}) < 2:
                errors.setdefault("terms", []).append("An equivalent set needs at least two different phrases.")
            if expansions:
                errors.setdefault("expansions", []).append("Only one-way sets have expansions; list every phrase under terms.")
        elif not terms or not expansions:
            errors.setdefault("expansions" if terms else "terms", []).append(
                "A one-way set needs at least one term and one expansion."
            )
        if errors:
            raise ValidationError(errors)


class SynonymRevision(models.Model):
    """One row (pk 1) counting changes to synonym sets; processes compare it with their cache."""

    number = models.BigIntegerField(default=0)
    changed_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "synonym revision"

    def __str__(self) -> str:
        return f"synonyms revision {self.number}"
