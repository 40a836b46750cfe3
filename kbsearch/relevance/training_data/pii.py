"""Queries that look like personal data (an e-mail address, a phone or ID number) never become
training data: a model trained on them could bring them back as neighbours, and the snapshot is
read by people who should not learn who searched for whom.

The patterns are regular expressions (``KBSEARCH_TRAINING_PII_PATTERNS``; defaults and how to
replace them in docs/relevance.md), matched anywhere in the query after NFKC normalisation, so
full-width digits and at-signs count like ASCII ones.
"""
import re
import unicodedata
from collections.abc import Iterable

from django.conf import settings


class PersonalDataFilter:
    """Tells whether a query matches any of the configured patterns."""

    def __init__(self, patterns: Iterable[str] | None = None) -> None:
        self.patterns = tuple(settings.KBSEARCH_TRAINING_PII_PATTERNS if patterns is None else patterns)
        try:
            self._compiled = [re.compile(pattern) for pattern in self.patterns]
        except re.error as error:
            raise ValueError(f"personal-data pattern {error.pattern!r} is not a regular expression: {error}") from None

    def looks_personal(self, query: str) -> bool:
        text = unicodedata.normalize("NFKC", query)
        return any(pattern.search(text) for pattern in self._compiled)
