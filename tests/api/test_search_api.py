"""GET /api/v1/search: results, highlighting, permissions in hits and facets, filters, paging, logging."""
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from kbsearch.analytics.models import QueryLog
from kbsearch.documents.models import Document
from tests.api.conftest import VISIBLE
from tests.keyword_encoder import KeywordEncoder

pytestmark = pytest.mark.django_db
URL = "/api/v1/search"


def language_of(external_id: str) -> str:
    """The language the file's name declares (``vpn.zh.md`` -> ``zh``), as the test data sets it."""
    return external_id.rsplit(".", 2)[-2]


def expected_language_counts(paths) -> dict[str, int]:
    counts: dict[str, int] = {}
    for path in paths:
        counts[language_of(path)] = counts.get(language_of(path), 0) + 1
    return counts


def search(client, **params):
    return client.get(URL, params)


def facet_counts(body, name):
    return {facet["value"]: facet["count"] for facet in body["facets"][name]}


# Under this geometry the English VPN guide, the only document with both "VPN" and "gateway", is
# also the nearest to the query "VPN gateway" (see KeywordEncoder): first in both legs by construction.
@pytest.mark.parametrize("kb_encoder", [KeywordEncoder(["vpn", "gateway"])], ids=["keyword-geometry"])
def test_hits_carry_metadata_highlighted_snippets_and_a_query_id(clients, kb):
    response = search(clients["alice"], q="VPN gateway")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["query"] == "VPN gateway" and body["offset"] == 0 and body["limit"] == 10
    assert QueryLog.objects.filter(pk=body["query_id"]).exists()
    top = body["results"][0]
    document = Document.objects.get(pk=top["document_id"])
    assert top["title"] == document.title and top["url"] == document.url and top["url"].startswith("file://")
    assert top["source"] == {"key": "share", "name": "Shared drive"}
    assert top["language"] == document.language and top["rank"] == 1
    assert isinstance(top["score"], float) and top["updated_at"]
    assert [r["rank"] for r in body["results"]] == list(range(1, len(body["results"]) + 1))
    # The English VPN guide is first (by the geometry above) and both words are marked in its snippet.
    assert document.external_id == "public/vpn.en.md"
    assert "<mark>VPN</mark>" in top["snippet_html"] and "<mark>gateway</mark>" in top["snippet_html"]
    for start, end in top["highlights"]:
        assert top["snippet"][start:end].casefold() in {"vpn", "gateway"}


def test_cjk_matches_are_highlighted_as_whole_words(clients, kb):
    body = search(clients["alice"], q="连接失败").json()
    hit = next(r for r in body["results"] if r["document_id"] == kb["public/vpn.zh.md"].pk)
    # Bigrams 连接, 接失, 失败 overlap, so the whole phrase is one mark, not three.
    assert "<mark>连接失败</mark>" in hit["snippet_html"]
    body = search(clients["bob"], q="배포 파이프라인").json()
    hit = next(r for r in body["results"] if r["document_id"] == kb["eng/deploy.ko.md"].pk)
    assert "<mark>배포</mark>" in hit["snippet_html"] and "<mark>파이프라인</mark>" in hit["snippet_html"]
    assert "<mark>배포</mark>" in hit["title_html"]


def test_users_in_different_groups_get_different_results_and_facet_counts(clients, visible):
    bodies = {name: search(clients[name], q="VPN", limit=50).json() for name in ("alice", "bob", "erin")}
    for name, body in bodies.items():
        returned = {r["document_id"] for r in body["results"]}
        assert returned == visible[name], name  # the whole visible set, and nothing else
        assert body["total"] == len(visible[name])
        assert sum(facet_counts(body, "language").values()) == len(visible[name])
        assert facet_counts(body, "source") == {"share": len(visible[name])}
    assert facet_counts(bodies["alice"], "language") == {"en": 3, "zh": 1, "ja": 1}
    assert facet_counts(bodies["bob"], "language") == {"en": 1, "zh": 1, "ja": 1, "ko": 1}
    assert facet_counts(bodies["erin"], "language") == {"en": 1, "zh": 1, "ja": 1}
    for name, body in bodies.items():
        assert facet_counts(body, "language") == expected_language_counts(VISIBLE[name]), name


def test_a_document_nobody_may_see_never_shows_in_hits_snippets_or_counts(clients, kb, visible):
    for name, client in clients.items():
        body = search(client, q="Osaka office secret draft", limit=50).json()
        # Hybrid search returns every visible document (the vector leg has no threshold), so the
        # exact visible set is expected, and the counts are over exactly that set.
        assert {r["document_id"] for r in body["results"]} == visible[name], name
        assert body["total"] == len(VISIBLE[name])
        assert facet_counts(body, "language") == expected_language_counts(VISIBLE[name]), name
        assert facet_counts(body, "source") == {"share": len(VISIBLE[name])}
        for hit in body["results"]:
            for field in ("title", "title_html", "snippet", "snippet_html"):
                assert "Osaka" not in hit[field] and "2027" not in hit[field], (name, field)


def test_filters_by_source_language_and_update_time(clients, kb, visible):
    body = search(clients["alice"], q="VPN", lang="en").json()
    assert {r["document_id"] for r in body["results"]} == {kb[p].pk for p in ("public/vpn.en.md", "hr/salary.en.md", "hr/leave.en.md")}
    assert facet_counts(body, "language") == {"en": 3}
    body = clients["alice"].get(f"{URL}?q=VPN&lang=zh&lang=ja").json()
    assert {r["language"] for r in body["results"]} == {"zh", "ja"}
    body = search(clients["alice"], q="VPN", source="share", limit=50).json()
    assert {r["document_id"] for r in body["results"]} == visible["alice"]
    future = (timezone.now() + timedelta(days=1)).isoformat()
    assert search(clients["alice"], q="VPN", updated_after=future).json()["results"] == []
    past = (timezone.now() - timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%SZ")
    recent = search(clients["alice"], q="VPN", updated_after=past, limit=50).json()["results"]
    assert {r["document_id"] for r in recent} == visible["alice"]


def test_unknown_filter_values_are_400_listing_the_allowed_ones(clients, kb):
    response = search(clients["alice"], q="VPN", lang="fr")
    assert response.status_code == 400
    assert "unknown language 'fr'" in response.json()["detail"] and "en, ja, ko, und, zh" in response.json()["detail"]
    response = search(clients["alice"], q="VPN", source="wiki")
    assert response.status_code == 400
    assert response.json() == {"detail": "unknown source 'wiki'; use one of: share", "code": "invalid_query"}


def test_a_source_the_user_cannot_see_is_not_named(users, kb, add_source, token_client):
    add_source("hr-secret", {"_access.yaml": "principals: [group:hr]\n", "plan.md": "# Plan\n\nVPN plan.\n"})
    bob = token_client(users["bob"])
    response = search(bob, q="VPN", source="hr-secret")
    assert response.status_code == 400 and "hr-secret" not in response.json()["detail"].split("use one of:")[1]
    assert search(token_client(users["alice"]), q="VPN", source="hr-secret").status_code == 200


def test_paging_continues_ranks_and_past_the_end_is_an_empty_page(clients, visible):
    first = search(clients["alice"], q="VPN", limit=2).json()
    second = search(clients["alice"], q="VPN", limit=2, offset=2).json()
    assert [r["rank"] for r in second["results"]] == [3, 4]
    assert not {r["document_id"] for r in first["results"]} & {r["document_id"] for r in second["results"]}
    assert first["next_offset"] == 2 and not first["exhausted"]
    beyond = search(clients["alice"], q="VPN", offset=500)
    assert beyond.status_code == 200
    assert beyond.json()["results"] == [] and beyond.json()["next_offset"] is None


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"q": ""}, "query is empty"),
        ({"q": "   "}, "query is empty"),
        ({"q": "\x00\x07\x1b"}, "query is empty"),
        ({"q": "x" * 10_000}, "the limit is 1000"),
        ({}, "q: This field is required."),
        ({"q": "vpn", "limit": 0}, "limit:"),
        ({"q": "vpn", "limit": 51}, "limit:"),
        ({"q": "vpn", "limit": "ten"}, "limit: A valid integer is required."),
        ({"q": "vpn", "offset": -1}, "offset:"),
        ({"q": "vpn", "offset": 1001}, "offset:"),
        ({"q": "vpn", "updated_after": "yesterday"}, "updated_after: Datetime has wrong format."),
        ({"q": "vpn", "updated_after": "9999-12-31T23:59:59-23:59"}, "updated_after:"),
        ({"q": "vpn", "source": "\x00"}, "source"),
    ],
)
def test_bad_input_is_a_400_with_a_message(clients, params, message):
    response = search(clients["alice"], **params)
    assert response.status_code == 400, response.content
    body = response.json()
    assert message in body["detail"] and body["code"]


def test_control_characters_inside_a_query_are_treated_as_spaces(clients, kb):
    response = search(clients["alice"], q="VPN\x00gateway\u200b\x1f")
    assert response.status_code == 200
    assert response.json()["query"] == "VPN gateway\u200b"


def test_every_search_is_logged_with_user_filters_results_and_latency(clients, users, kb):
    body = search(clients["alice"], q="  VPN  home ", lang="en", limit=3).json()
    log = QueryLog.objects.get(pk=body["query_id"])
    assert log.user == users["alice"] and log.channel == "api" and log.mode == "hybrid"
    assert log.query == "VPN home" and log.query_normalized == "vpn home"
    assert log.filters == {"source": [], "lang": ["en"], "place": [], "updated_after": None}
    assert log.results == [{"document": r["document_id"], "rank": r["rank"], "score": pytest.approx(r["score"], abs=1e-5)} for r in body["results"]]
    assert log.result_count == 3 and log.total == 3 and log.limit == 3 and log.offset == 0
    assert log.lexical_total == 3 and log.latency_ms > 0
    before = QueryLog.objects.count()
    search(clients["alice"], q="")  # rejected searches are not logged
    assert QueryLog.objects.count() == before


def test_authentication_is_required_and_bad_tokens_are_401(clients):
    assert APIClient().get(URL, {"q": "vpn"}).status_code == 401
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    response = bad.get(URL, {"q": "vpn"})
    assert response.status_code == 401 and response.json() == {"detail": "Invalid token.", "code": "authentication_failed"}
    bad.credentials(HTTP_AUTHORIZATION="Token two words")
    assert bad.get(URL, {"q": "vpn"}).status_code == 401


def test_a_revoked_token_stops_working(users, kb, token_client):
    client = token_client(users["erin"])
    assert search(client, q="vpn").status_code == 200
    Token.objects.filter(user=users["erin"]).delete()
    assert search(client, q="vpn").status_code == 401


def test_session_authentication_works_for_the_page(users, kb):
    client = APIClient()
    assert client.login(username="alice", password="pw-alice")
    assert search(client, q="vpn").status_code == 200


def test_searches_are_rate_limited_per_user(clients, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"search": "2/minute"}}
    assert search(clients["alice"], q="vpn").status_code == 200
    assert search(clients["alice"], q="vpn").status_code == 200
    response = search(clients["alice"], q="vpn")
    assert response.status_code == 429 and "throttled" in response.json()["detail"]
    assert int(response["Retry-After"]) > 0
    assert search(clients["bob"], q="vpn").status_code == 200  # another user has their own budget
