"""No leak on any endpoint: every user gets exactly the documents they may see, everywhere.

Two sources, access by group, by user, by several groups, by nobody; a source only engineers can see.
Each restricted document carries a made-up marker word ("kestrel" for HR...) that no document
visible to an outsider contains, so any hidden text reaching a title or snippet is caught. The
expected sets are written by hand below, never read back from the system under test. For every user
and every endpoint (API and page): search results, totals, source and language facets, snippets,
the document itself (200 exactly for visible ids, one identical 404 for hidden and missing ones),
feedback and clicks (accepted exactly for visible documents).
"""
import re

import pytest
from django.test import Client

from kbsearch.analytics.models import Click, Feedback, QueryLog
from tests.knowledge_base import knowledge_base_declared

pytestmark = pytest.mark.django_db

SHARE = {
    "_access.yaml": "principals: [public]\n",
    "public/handbook.en.md": "# Employee handbook\n\nWelcome. Connect to the VPN before opening the handbook.\n",
    "public/vpn.zh.md": "# VPN 设置\n\n在家连接 VPN 时请使用 Northwind Connect。\n",
    "public/canteen.ja.md": "# 食堂\n\n食堂は8時に開きます。VPN は不要です。\n",
    "hr/_access.yaml": "principals: [group:hr]\n",
    "hr/salary.en.md": "# Kestrel salary bands\n\nBand L3 pays kestrel allowance and a VPN stipend.\n",
    "hr/leave.ko.md": "# 휴가 kestrel\n\n육아 휴가는 kestrel 규정을 따릅니다. VPN 노트북 지급.\n",
    "eng/_access.yaml": "principals: [group:engineering]\n",
    "eng/deploy.ko.md": "# 배포 quokka\n\nVPN 에 접속한 뒤 quokka 파이프라인을 실행하세요.\n",
    "people/_access.yaml": "principals: [user:dave]\n",
    "people/dave.en.md": "# Narwhal review for Dave\n\nDave's narwhal review, VPN access renewed.\n",
    "mixed/_access.yaml": "principals: [group:hr, group:engineering]\n",
    "mixed/roadmap.zh.md": "# Pangolin 路线图\n\nPangolin 项目明年上线，VPN 网关升级。\n",
    "drafts/_access.yaml": "principals: []\n",
    "drafts/osaka.en.md": "# Axolotl Osaka office\n\nA secret axolotl draft: the Osaka VPN opens in 2027.\n",
}
WIKI = {
    "_access.yaml": "principals: [group:engineering]\n",
    "runbook.en.md": "# Quokka runbook\n\nRestart the quokka service when the VPN gateway fails.\n",
    "oncall.ja.md": "# quokka 当番\n\n当番は VPN で quokka に接続します。\n",
}
USERS = {
    "alice": {"groups": ["hr"]},
    "bob": {"groups": ["engineering"]},
    "dave": {"groups": []},
    "erin": {"groups": []},
    "ivan": {"groups": ["hr", "engineering"], "is_active": False},
}
PUBLIC = {("share", "public/handbook.en.md"), ("share", "public/vpn.zh.md"), ("share", "public/canteen.ja.md")}
VISIBLE = {
    "alice": PUBLIC | {("share", "hr/salary.en.md"), ("share", "hr/leave.ko.md"), ("share", "mixed/roadmap.zh.md")},
    "bob": PUBLIC | {("share", "eng/deploy.ko.md"), ("share", "mixed/roadmap.zh.md"),
                     ("wiki", "runbook.en.md"), ("wiki", "oncall.ja.md")},
    "dave": PUBLIC | {("share", "people/dave.en.md")},
    "erin": PUBLIC,
}
ACTIVE = sorted(VISIBLE)
# Which marker words each document holds (its title or text), to find hidden text in responses.
MARKERS = {
    ("share", "hr/salary.en.md"): "kestrel", ("share", "hr/leave.ko.md"): "kestrel",
    ("share", "eng/deploy.ko.md"): "quokka", ("wiki", "runbook.en.md"): "quokka", ("wiki", "oncall.ja.md"): "quokka",
    ("share", "people/dave.en.md"): "narwhal", ("share", "mixed/roadmap.zh.md"): "pangolin",
    ("share", "drafts/osaka.en.md"): "axolotl",
}
SOURCE_NAMES = {"share": "Shared drive", "wiki": "Wiki"}
LANGUAGE_LABELS = {"en": "English", "zh": "Chinese", "ja": "Japanese", "ko": "Korean"}
QUERIES = ["VPN handbook", "kestrel quokka narwhal pangolin axolotl salary review"]
MISSING_ID = 10**12


kb_files, kb_users = knowledge_base_declared(SHARE, USERS)


@pytest.fixture
def everything(kb, add_source) -> dict[tuple[str, str], int]:
    """Both sources synced: {(source key, external id): document id}."""
    from kbsearch.documents.models import Document

    add_source("wiki", WIKI)
    documents = {(d.source.key, d.external_id): d.pk for d in Document.objects.select_related("source")}
    assert set(documents) == {("share", p) for p in SHARE if not p.endswith("_access.yaml")} | {
        ("wiki", p) for p in WIKI if not p.endswith("_access.yaml")
    }
    return documents


def language_of(key: tuple[str, str]) -> str:
    return key[1].rsplit(".", 2)[-2]


def expected_facets(name: str) -> tuple[dict[str, int], dict[str, int]]:
    sources: dict[str, int] = {}
    languages: dict[str, int] = {}
    for key in VISIBLE[name]:
        sources[key[0]] = sources.get(key[0], 0) + 1
        languages[language_of(key)] = languages.get(language_of(key), 0) + 1
    return sources, languages


def hidden_markers(name: str) -> set[str]:
    visible_markers = {MARKERS[key] for key in VISIBLE[name] if key in MARKERS}
    return set(MARKERS.values()) - visible_markers


def ids_of(name: str, everything) -> set[int]:
    return {everything[key] for key in VISIBLE[name]}


def page_facets(page: str, facet: str) -> dict[str, int]:
    block = re.search(rf'<ul class="facet" data-facet="{facet}">(.*?)</ul>', page, re.S)
    if block is None:
        return {}
    return {label: int(n) for label, n in re.findall(r'>([^<>]+?) <span class="count">(\d+)<', block.group(1))}


def without_csrf(content: bytes) -> str:
    """A page without its per-request CSRF token, so two renderings can be compared."""
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", content.decode())


def test_api_search_shows_each_user_exactly_their_documents_counts_and_text(everything, users, token_client):
    for name in ACTIVE:
        client = token_client(users[name])
        sources, languages = expected_facets(name)
        for query in QUERIES:
            response = client.get("/api/v1/search", {"q": query, "limit": 50})
            assert response.status_code == 200, response.content
            body = response.json()
            # Hybrid search returns every visible document (the vector leg has no threshold).
            assert {r["document_id"] for r in body["results"]} == ids_of(name, everything), (name, query)
            assert len(body["results"]) == body["total"] == len(VISIBLE[name]), (name, query)
            assert {f["value"]: f["count"] for f in body["facets"]["source"]} == sources, (name, query)
            assert {f["value"]: f["count"] for f in body["facets"]["language"]} == languages, (name, query)
            shown = " ".join(r[field] for r in body["results"] for field in ("title", "title_html", "snippet", "snippet_html"))
            for marker in hidden_markers(name):
                assert marker not in shown.casefold(), (name, query, marker)
            if query == QUERIES[0]:  # the query names no marker, so none may appear anywhere
                assert not any(marker in response.content.decode().casefold() for marker in hidden_markers(name))
                assert "Osaka" not in response.content.decode()


def test_api_filters_stay_within_the_visible_set(everything, users, token_client):
    for name in ACTIVE:
        client = token_client(users[name])
        for language in LANGUAGE_LABELS:
            body = client.get("/api/v1/search", {"q": "VPN", "lang": language, "limit": 50}).json()
            expected = {everything[key] for key in VISIBLE[name] if language_of(key) == language}
            assert {r["document_id"] for r in body["results"]} == expected, (name, language)
            assert body["total"] == len(expected)
        wiki = client.get("/api/v1/search", {"q": "VPN", "source": "wiki", "limit": 50})
        if name == "bob":
            assert {r["document_id"] for r in wiki.json()["results"]} == {
                everything[("wiki", "runbook.en.md")], everything[("wiki", "oncall.ja.md")]
            }
        else:  # a source with nothing the user may see is unknown to them, and not named
            assert wiki.status_code == 400
            assert wiki.json()["detail"] == "unknown source 'wiki'; use one of: share"


def test_page_search_shows_each_user_exactly_their_documents_counts_and_text(everything, page_client):
    for name in ACTIVE:
        sources, languages = expected_facets(name)
        response = page_client(name).get("/", {"q": QUERIES[0]})
        assert response.status_code == 200
        page = response.content.decode()
        shown = {int(i) for i in re.findall(r'class="result" data-document-id="(\d+)"', page)}
        assert shown == ids_of(name, everything), name
        assert page_facets(page, "source") == {SOURCE_NAMES[key]: n for key, n in sources.items()}, name
        assert page_facets(page, "language") == {LANGUAGE_LABELS[code]: n for code, n in languages.items()}, name
        assert f"of about {len(VISIBLE[name])} (" in page, name
        for marker in hidden_markers(name):
            assert marker not in page.casefold(), (name, marker)
        assert "Osaka" not in page and ("Wiki" in page) == (name == "bob")


def test_documents_are_200_exactly_when_visible_and_one_identical_404_otherwise(everything, users, token_client, page_client):
    for name in ACTIVE:
        api, page = token_client(users[name]), page_client(name)
        missing_api = api.get(f"/api/v1/documents/{MISSING_ID}")
        missing_page = page.get(f"/documents/{MISSING_ID}/")
        assert missing_api.status_code == missing_page.status_code == 404
        for key, document_id in everything.items():
            via_api = api.get(f"/api/v1/documents/{document_id}")
            via_page = page.get(f"/documents/{document_id}/")
            if key in VISIBLE[name]:
                assert via_api.status_code == via_page.status_code == 200, (name, key)
                assert via_api.json()["id"] == document_id
            else:
                assert via_api.status_code == 404 and via_api.json() == missing_api.json(), (name, key)
                assert via_page.status_code == 404, (name, key)
                assert without_csrf(via_page.content) == without_csrf(missing_page.content), (name, key)


def test_feedback_and_clicks_are_accepted_exactly_for_visible_documents(everything, users, token_client, page_client):
    for name in ACTIVE:
        api, page = token_client(users[name]), page_client(name)
        query_id = api.get("/api/v1/search", {"q": "VPN"}).json()["query_id"]
        page.get("/", {"q": "VPN"})
        page_query_id = QueryLog.objects.filter(user=users[name], channel="web").latest("created_at").pk

        def send(document_id, query_id=query_id, page_query_id=page_query_id, api=api, page=page):
            return (
                api.post("/api/v1/feedback", {"document_id": document_id, "value": "up", "query_id": query_id}, format="json"),
                api.post("/api/v1/clicks", {"document_id": document_id, "rank": 1, "query_id": query_id}, format="json"),
                page.post("/feedback/", {"document_id": document_id, "query_id": page_query_id, "value": "down"}),
                page.get(f"/documents/{document_id}/", {"qid": page_query_id, "rank": 2}),
            )

        missing = send(MISSING_ID)
        assert [r.status_code for r in missing] == [404, 404, 404, 404]
        for key, document_id in everything.items():
            feedback, click, form, opened = send(document_id)
            if key in VISIBLE[name]:
                assert (feedback.status_code, click.status_code, form.status_code, opened.status_code) == (201, 201, 303, 200)
            else:
                assert feedback.status_code == click.status_code == form.status_code == opened.status_code == 404
                assert feedback.json() == click.json() == missing[0].json() == missing[1].json(), (name, key)
                assert without_csrf(form.content) == without_csrf(missing[2].content), (name, key)
        judged = ids_of(name, everything)
        assert set(Feedback.objects.filter(user=users[name]).values_list("document_id", flat=True)) == judged
        assert Feedback.objects.filter(user=users[name]).count() == 2 * len(judged)  # API vote and form vote
        assert set(Click.objects.filter(user=users[name]).values_list("document_id", flat=True)) == judged
        assert Click.objects.filter(user=users[name]).count() == 2 * len(judged)  # API click and page open


def test_an_inactive_user_with_every_group_is_refused_everywhere(everything, users, token_client):
    ivan = users["ivan"]
    api = token_client(ivan)  # a token issued while the account was active
    assert api.get("/api/v1/search", {"q": "VPN"}).status_code == 401
    page = Client()
    page.force_login(ivan)  # a session from before the account was disabled
    response = page.get("/", {"q": "VPN"})
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    for document_id in everything.values():
        assert api.get(f"/api/v1/documents/{document_id}").status_code == 401
        assert page.get(f"/documents/{document_id}/").status_code == 302
        assert api.post("/api/v1/clicks", {"document_id": document_id, "rank": 1, "query": "x"}, format="json").status_code == 401
    assert not Feedback.objects.exists() and not Click.objects.exists()
