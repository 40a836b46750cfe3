"""Admin synonyms widen the BM25 leg: "PRD" finds documents that only say what it stands for.

The knowledge base says "PRD" once, "product requirements document" once and "产品需求文档" once
(publicly), and "产品需求文档" once more in an HR-only document. Expansion must find the synonyms
by keyword, rank the document with the word typed above those with its synonyms, do nothing when
the set is disabled or written for another language, and never show the HR document to others.
"""
import pytest
from django.db.models import F
from django.utils import timezone

from kbsearch.search.models import SynonymRevision, SynonymSet
from kbsearch.search.services import search_run
from kbsearch.search.synonyms import synonym_table
from tests.knowledge_base import knowledge_base_declared

pytestmark = pytest.mark.django_db

FILES = {
    "_access.yaml": "principals: [public]\n",
    "public/checklist.en.md": "# PRD checklist\n\nThe PRD names an owner for every goal.\n",
    "public/spec.en.md": "# Writing specs\n\nEvery product requirements document lists goals and owners.\n",
    "public/spec.zh.md": "# 写规范\n\n每份产品需求文档都列出目标和负责人。\n",
    "public/lunch.en.md": "# Lunch menu\n\nSoup on Mondays, noodles on Fridays.\n",
    "hr/_access.yaml": "principals: [group:hr]\n",
    "hr/pay.zh.md": "# 薪酬方案\n\n薪酬系统的产品需求文档草稿，仅限人事。\n",
}
USERS = {"alice": {"groups": ["hr"]}, "erin": {"groups": []}}
kb_files, kb_users = knowledge_base_declared(FILES, USERS)

PRD = "PRD\nproduct requirements document\n产品需求文档"


def found(user, query: str, mode: str = "bm25") -> list[str]:
    return [result.document.external_id for result in search_run(user=user, query=query, mode=mode).results]


def test_an_acronym_finds_its_english_and_chinese_expansions_below_itself(kb, users):
    erin = users["erin"]
    assert found(erin, "PRD") == ["public/checklist.en.md"]
    SynonymSet.objects.create(terms=PRD)
    results = found(erin, "PRD")
    assert results[0] == "public/checklist.en.md"  # the word typed outranks its synonyms
    assert set(results) == {"public/checklist.en.md", "public/spec.en.md", "public/spec.zh.md"}
    # Equivalent: the Chinese phrase (its analysed bigrams, inside a longer sentence) finds "PRD".
    chinese = found(erin, "产品需求文档")
    assert chinese[0] == "public/spec.zh.md" and "public/checklist.en.md" in chinese


def test_expansion_never_reveals_a_document_the_user_cannot_see(kb, users):
    SynonymSet.objects.create(terms=PRD)
    for mode in ("bm25", "hybrid"):
        assert "hr/pay.zh.md" not in found(users["erin"], "PRD", mode)
        response = search_run(user=users["erin"], query="PRD", mode=mode)
        assert all(result.document.external_id != "hr/pay.zh.md" for result in response.results)
        assert response.facets["language"].get("zh") == 1  # counted: the public Chinese spec only
    assert "hr/pay.zh.md" in found(users["alice"], "PRD")


def test_a_disabled_set_does_nothing_and_enabling_it_applies_at_once(kb, users):
    synonym_set = SynonymSet.objects.create(terms=PRD, enabled=False)
    assert found(users["erin"], "PRD") == ["public/checklist.en.md"]
    synonym_set.enabled = True
    synonym_set.save()
    assert len(found(users["erin"], "PRD")) == 3
    synonym_set.delete()
    assert found(users["erin"], "PRD") == ["public/checklist.en.md"]


def test_one_way_sets_expand_only_from_their_terms(kb, users):
    SynonymSet.objects.create(kind="one_way", terms="PRD", expansions="product requirements document\n产品需求文档")
    assert len(found(users["erin"], "PRD")) == 3
    assert "public/checklist.en.md" not in found(users["erin"], "产品需求文档")


def test_a_set_for_another_language_is_not_applied(kb, users):
    SynonymSet.objects.create(terms=PRD, language="zh")
    assert found(users["erin"], "PRD") == ["public/checklist.en.md"]  # an English (Latin-script) query
    assert "public/checklist.en.md" in found(users["erin"], "产品需求文档")


def test_hybrid_search_counts_synonym_matches_as_keyword_matches(kb, kb_encoder, users, monkeypatch):
    encoded = []
    original = kb_encoder.encode_queries
    monkeypatch.setattr(kb_encoder, "encode_queries", lambda texts: encoded.extend(texts) or original(texts))
    before = search_run(user=users["erin"], query="PRD", mode="hybrid").lexical_total
    SynonymSet.objects.create(terms=PRD)
    after = search_run(user=users["erin"], query="PRD", mode="hybrid")
    assert (before, after.lexical_total) == (1, 3)
    assert after.results[0].document.external_id == "public/checklist.en.md"
    assert encoded == ["PRD", "PRD"]  # the vector leg gets the query as typed, never the expansion


def test_other_processes_follow_the_revision_not_a_signal(kb, users):
    synonym_set = SynonymSet.objects.create(terms=PRD)
    assert synonym_table().rule_count == 3
    # Another process disables the set: this one gets no signal; the table it cached still holds.
    SynonymSet.objects.filter(pk=synonym_set.pk).update(enabled=False)
    assert synonym_table().rule_count == 3
    # That process's save bumped the revision in the same transaction: this one reloads.
    SynonymRevision.objects.filter(pk=1).update(number=F("number") + 1, changed_at=timezone.now())
    assert synonym_table().rule_count == 0
    assert found(users["erin"], "PRD") == ["public/checklist.en.md"]
