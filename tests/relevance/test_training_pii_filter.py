"""Queries that look like personal data never become training data, by configurable patterns."""
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from kbsearch import settings as settings_module
from kbsearch.relevance.training_data.pii import PersonalDataFilter
from tests.relevance.conftest import search_and_click

PERSONAL = [
    "jane.doe@example.com",
    "vpn for j.smith+it@corp.example.co.jp",
    "call +49 30 1234567",
    "0901 234 5678",
    "555-123-4567",
    "card 4111 1111 1111 1111",
    "11010519491231002X",
    "id 123456789",
    "ssn 123-45-6789",
    "iban DE89 3704 0044 0532 0130 00",
    "ｊａｎｅ＠ｅｘａｍｐｌｅ．ｃｏｍ",  # full-width: NFKC makes it an address
    "１２３４５６７８９",
]
ORDINARY = [
    "vpn gateway", "error 404", "ISO 27001 audit", "meeting notes 2024-01-15", "2024-01-15 10:30 release",
    "KB4056892", "python 3.12.1", "这个API的authentication流程", "Q3 OKR", "room 12-345",
]


@pytest.mark.parametrize("query", PERSONAL)
def test_default_patterns_catch_personal_data(query):
    assert PersonalDataFilter().looks_personal(query)


@pytest.mark.parametrize("query", ORDINARY)
def test_default_patterns_leave_ordinary_queries(query):
    assert not PersonalDataFilter().looks_personal(query)


def test_a_bad_pattern_is_refused_with_its_text():
    with pytest.raises(ValueError, match=r"\(unclosed"):
        PersonalDataFilter(["(unclosed"])


def test_environment_patterns_replace_the_defaults_and_must_be_valid(monkeypatch):
    monkeypatch.setenv("KBSEARCH_TRAINING_PII_PATTERNS", '["project falcon", "\\\\bemp-\\\\d+"]')
    assert settings_module._env_patterns("KBSEARCH_TRAINING_PII_PATTERNS", []) == ["project falcon", r"\bemp-\d+"]
    for bad in ("not json", '{"a": 1}', '["(unclosed"]', "[1]"):
        monkeypatch.setenv("KBSEARCH_TRAINING_PII_PATTERNS", bad)
        with pytest.raises(ImproperlyConfigured, match="KBSEARCH_TRAINING_PII_PATTERNS"):
            settings_module._env_patterns("KBSEARCH_TRAINING_PII_PATTERNS", [])


def test_personal_queries_are_dropped_everywhere_in_the_snapshot(kb, users, doc, build, base_time, settings):
    settings.KBSEARCH_TRAINING_PII_PATTERNS = [*settings.KBSEARCH_TRAINING_PII_PATTERNS, "(?i)project falcon"]
    bob = users["bob"]
    search_and_click(bob, "vpn for jane.doe@example.com", doc("vpn"), rank=1, at=base_time)
    search_and_click(bob, "printer +44 20 7946 0958", doc("printer"), rank=1, at=base_time + timedelta(hours=1))
    search_and_click(bob, "Project Falcon wifi", doc("wifi"), rank=1, at=base_time + timedelta(hours=2))
    search_and_click(bob, "wifi password", doc("wifi"), rank=1, at=base_time + timedelta(hours=3))
    snapshot, rows = build(heldout_fraction=0.5)
    assert [row["query"] for row in rows] == [] and snapshot.summary["heldout"]["queries"] == 1
    assert snapshot.summary["dropped"]["query looks like personal data"] == 3
    written = "".join(path.read_text(encoding="utf-8") for path in Path(snapshot.path).rglob("*") if path.is_file())
    for secret in ("jane.doe", "7946", "Falcon"):
        assert secret not in written
    assert "wifi password" in written
