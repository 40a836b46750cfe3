"""Filtering beyond the first candidate pool: every page, however deep, holds only visible documents.

The ranking fetches 300 candidates first. Here 420 archive documents that only archivists may see
match the query better than any document anyone else may see, in both legs by construction: they say
"zephyr" four times in a few words, and under the keyword geometry below their vector is the query's
own, while the visible ones say it once next to "office" twice (cosine 1/sqrt(5)). A search that
ranked first and filtered after would give everyone else empty pages. The knowledge base is written
through ingest directly (no files, no model) to stay quick.
"""
import re
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from connectors.services import source_create
from kbsearch.documents.models import Document, Source
from kbsearch.documents.services import documents_ingest
from kbsearch.index.embedded import EmbeddedIndexBackend
from kbsearch.index.registry import reset_index_backend
from kbsearch.ingest.inputs import DocumentInput
from kbsearch.ingest.parsers import blocks_from_text
from kbsearch.search.services import search_run
from tests.keyword_encoder import KeywordEncoder
from tests.knowledge_base import use_encoder, users_create

pytestmark = pytest.mark.django_db

ENCODER = KeywordEncoder(["zephyr", "office", "办公室", "事務所"])
ARCHIVED = 420
PUBLIC_TEXT = {
    "en": "Public note {i}: the zephyr room is in the office next to the office printers.",
    "zh": "公开说明 {i}：zephyr 会议室在办公室里，靠近办公室的打印机。",
    "ja": "公開メモ {i}：zephyr 会議室は事務所の中、事務所のプリンターの隣です。",
}
USERS = {
    "erin": {"groups": []},
    "alice": {"groups": ["hr"]},
    "archivist": {"groups": ["archive"]},
}


def _input(external_id: str, title: str, text: str, principals: list[str], language: str) -> DocumentInput:
    return DocumentInput(
        external_id=external_id, title=title, blocks=blocks_from_text(text), principals=principals, language=language
    )


def _build(root: Path, index: EmbeddedIndexBackend) -> dict[str, set[int]]:
    (root / "archive").mkdir()
    (root / "share").mkdir()
    archive = source_create(key="archive", name="Archive", connector="filesystem", config={"root": str(root / "archive")})
    share = source_create(key="share", name="Shared drive", connector="filesystem", config={"root": str(root / "share")})
    archived = [
        _input(f"sealed/{i}.md", f"Zephyr sealed {i}", f"Zephyr zephyr zephyr {i}.", ["group:archive"], "en")
        for i in range(ARCHIVED)
    ]
    languages = ["en", "zh", "ja"]
    public = [
        _input(f"public/{i}.md", f"Note {i}", PUBLIC_TEXT[languages[i % 3]].format(i=i), ["public"], languages[i % 3])
        for i in range(40)
    ]
    hr = [
        _input(f"hr/{i}.md", f"Kestrel memo {i}", f"Kestrel memo {i}: zephyr payroll in the office, office hours.",
               ["group:hr"], "en")
        for i in range(12)
    ]
    drafts = [
        _input(f"drafts/{i}.md", f"Axolotl draft {i}", f"Axolotl zephyr zephyr draft {i}.", [], "en") for i in range(5)
    ]
    for source, items in ((archive, archived), (share, public + hr + drafts)):
        report = documents_ingest(source=source, items=items, encoder=ENCODER, index=index)
        assert not report.errors and report.created == len(items)
    users_create(USERS)
    ids = lambda prefix: set(Document.objects.filter(external_id__startswith=prefix).values_list("pk", flat=True))  # noqa: E731
    return {"archive": ids("sealed/"), "public": ids("public/"), "hr": ids("hr/"), "drafts": ids("drafts/")}


@pytest.fixture(scope="module")
def deep_kb(django_db_setup, django_db_blocker, tmp_path_factory):
    """Built once for this module (477 documents through ingest take seconds) and removed after.

    Committed outside the tests' transactions, so what a test writes (searches, tokens) is still
    rolled back after it. Returns the ids of each kind of document: archive, public, hr, drafts.
    """
    root = tmp_path_factory.mktemp("deep")
    index = EmbeddedIndexBackend(path=str(root / "index" / "embedded.sqlite3"))
    try:
        with django_db_blocker.unblock():
            ids = _build(root, index)
        yield {"ids": ids, "index_path": str(root / "index" / "embedded.sqlite3")}
    finally:
        index.close()
        with django_db_blocker.unblock():
            Source.objects.filter(key__in=["archive", "share"]).delete()
            User.objects.filter(username__in=USERS).delete()
            Group.objects.filter(name__in=["hr", "archive"]).delete()


@pytest.fixture
def deep(deep_kb, db, settings, monkeypatch) -> dict[str, set[int]]:
    """This test searches the module's knowledge base with the keyword geometry."""
    settings.KBSEARCH_INDEX = {
        "BACKEND": "kbsearch.index.embedded.EmbeddedIndexBackend",
        "OPTIONS": {"path": deep_kb["index_path"]},
    }
    settings.KBSEARCH_WARM_ENCODER = False
    reset_index_backend()
    use_encoder(monkeypatch, ENCODER)
    yield deep_kb["ids"]
    reset_index_backend()


@pytest.fixture
def deep_users(deep) -> dict[str, User]:
    return {user.username: user for user in User.objects.filter(username__in=USERS)}


def language_counts(kb_ids: set[int]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for language in Document.objects.filter(pk__in=kb_ids).values_list("language", flat=True):
        counts[language] = counts.get(language, 0) + 1
    return counts


def api_pages(client, limit: int) -> list[dict]:
    """Every page of the search "zephyr", following next_offset to the end."""
    pages, offset = [], 0
    while offset is not None:
        response = client.get("/api/v1/search", {"q": "zephyr", "limit": limit, "offset": offset})
        assert response.status_code == 200, response.content
        pages.append(response.json())
        offset = pages[-1]["next_offset"]
        assert len(pages) < 50, "paging never ends"
    return pages


def test_the_premise_hidden_documents_fill_the_first_candidate_pool(deep, deep_users, token_client):
    """Seen by someone allowed to see them, the archive documents take the first 300 places and more."""
    client = token_client(deep_users["archivist"])
    ranked = []
    for offset in range(0, 350, 50):
        ranked += [r["document_id"] for r in client.get("/api/v1/search", {"q": "zephyr", "limit": 50, "offset": offset}).json()["results"]]
    assert len(ranked) == len(set(ranked)) == 350
    assert set(ranked) <= deep["archive"]


@pytest.mark.parametrize(("name", "kinds", "limit"), [("erin", ("public",), 7), ("alice", ("public", "hr"), 50)])
def test_api_pages_reach_every_visible_match_and_nothing_else(deep, deep_users, token_client, name, kinds, limit):
    expected = set().union(*(deep[kind] for kind in kinds))
    expected_languages = language_counts(expected)
    expected_sources = {"share": len(expected)}
    pages = api_pages(token_client(deep_users[name]), limit)
    seen = []
    for number, page in enumerate(pages):
        ids = [r["document_id"] for r in page["results"]]
        assert set(ids) <= expected, f"page {number} shows documents {name} may not see"
        assert len(ids) == min(limit, len(expected) - number * limit), f"page {number} is short"
        assert page["total"] == len(expected)
        assert {f["value"]: f["count"] for f in page["facets"]["language"]} == expected_languages
        assert {f["value"]: f["count"] for f in page["facets"]["source"]} == expected_sources
        seen += ids
    assert [r["rank"] for page in pages for r in page["results"]] == list(range(1, len(expected) + 1))
    assert len(seen) == len(set(seen)) and set(seen) == expected
    assert pages[-1]["exhausted"] and pages[-1]["next_offset"] is None


def test_page_route_pages_reach_every_visible_match_and_nothing_else(deep, deep_users):
    client = Client()
    client.force_login(deep_users["erin"])
    expected = deep["public"]
    seen = []
    for number in range(1, 5):  # 40 documents, 10 a page
        page = client.get("/", {"q": "zephyr", "page": str(number)}).content.decode()
        ids = [int(i) for i in re.findall(r'class="result" data-document-id="(\d+)"', page)]
        assert len(ids) == 10 and set(ids) <= expected, number
        assert f"of about {len(expected)} (" in page
        counts = re.search(r'data-facet="source">.*?<span class="count">(\d+)<', page, re.S).group(1)
        assert int(counts) == len(expected) and "Archive" not in page and "Kestrel" not in page
        seen += ids
    assert len(seen) == len(set(seen)) and set(seen) == expected
    after = client.get("/", {"q": "zephyr", "page": "5"}).content.decode()
    assert 'class="result"' not in after


@pytest.mark.parametrize("mode", ["bm25", "vector", "hybrid"])
def test_every_ranking_mode_filters_inside_the_pool(deep, deep_users, mode):
    response = search_run(user=deep_users["erin"], query="zephyr", mode=mode, limit=50, encoder=ENCODER)
    assert {result.document.pk for result in response.results} == deep["public"]
    assert response.total == len(deep["public"]) and response.exhausted
