"""No leak on any endpoint: every user gets exactly the documents they may see, everywhere.

Two sources, access by group, by user, by several groups, by nobody; a source only engineers can see.
Each restricted document carries a made-up marker word ("kestrel" for HR...) that no document
visible to an outsider contains, so any hidden text reaching a title or snippet is caught. The
expected sets are written by hand below, never read back from the system under test. For every user
and every endpoint (API and page): search results, totals, source, language and place facets, snippets,
the document itself (200 exactly for visible ids, one identical 404 for hidden and missing ones),
feedback and clicks (accepted exactly for visible documents). The checks themselves are shared
(``tests.leak_checks``); this module states the case: who is in which Django group.
"""
import pytest
from django.test import Client

from kbsearch.analytics.models import Click, Feedback
from tests.knowledge_base import knowledge_base_declared
from tests.leak_checks import (
    LANGUAGE_LABELS,
    Expected,
    api_search_check,
    documents_check,
    feedback_and_clicks_check,
    language_of,
    page_search_check,
)

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
# The share's top folders; the wiki's files sit at its root, in no place.
PLACES = {
    ("share", "public/handbook.en.md"): ("share:public", "public"), ("share", "public/vpn.zh.md"): ("share:public", "public"),
    ("share", "public/canteen.ja.md"): ("share:public", "public"), ("share", "hr/salary.en.md"): ("share:hr", "hr"),
    ("share", "hr/leave.ko.md"): ("share:hr", "hr"), ("share", "eng/deploy.ko.md"): ("share:eng", "eng"),
    ("share", "people/dave.en.md"): ("share:people", "people"), ("share", "mixed/roadmap.zh.md"): ("share:mixed", "mixed"),
    ("share", "drafts/osaka.en.md"): ("share:drafts", "drafts"),
}
QUERIES = ["VPN handbook", "kestrel quokka narwhal pangolin axolotl salary review"]


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


@pytest.fixture
def expected(everything) -> Expected:
    return Expected(documents=everything, visible=VISIBLE, markers=MARKERS, source_names=SOURCE_NAMES, places=PLACES)


def test_api_search_shows_each_user_exactly_their_documents_counts_and_text(expected, users, token_client):
    for name in ACTIVE:
        client = token_client(users[name])
        for query in QUERIES:
            body = api_search_check(expected, name, client, query, names_no_marker=query == QUERIES[0])
            if query == QUERIES[0]:
                assert "Osaka" not in body


def test_api_filters_stay_within_the_visible_set(expected, users, token_client):
    everything = expected.documents
    for name in ACTIVE:
        client = token_client(users[name])
        for language in LANGUAGE_LABELS:
            body = client.get("/api/v1/search", {"q": "VPN", "lang": language, "limit": 50}).json()
            expected_ids = {everything[key] for key in VISIBLE[name] if language_of(key) == language}
            assert {r["document_id"] for r in body["results"]} == expected_ids, (name, language)
            assert body["total"] == len(expected_ids)
        wiki = client.get("/api/v1/search", {"q": "VPN", "source": "wiki", "limit": 50})
        if name == "bob":
            assert {r["document_id"] for r in wiki.json()["results"]} == {
                everything[("wiki", "runbook.en.md")], everything[("wiki", "oncall.ja.md")]
            }
        else:  # a source with nothing the user may see is unknown to them, and not named
            assert wiki.status_code == 400
            assert wiki.json()["detail"] == "unknown source 'wiki'; use one of: share"


def test_page_search_shows_each_user_exactly_their_documents_counts_and_text(expected, page_client):
    for name in ACTIVE:
        page = page_search_check(expected, name, page_client(name), QUERIES[0])
        assert "Osaka" not in page and ("Wiki" in page) == (name == "bob")


def test_documents_are_200_exactly_when_visible_and_one_identical_404_otherwise(expected, users, token_client, page_client):
    for name in ACTIVE:
        documents_check(expected, name, token_client(users[name]), page_client(name))


def test_feedback_and_clicks_are_accepted_exactly_for_visible_documents(expected, users, token_client, page_client):
    for name in ACTIVE:
        feedback_and_clicks_check(expected, name, users[name], token_client(users[name]), page_client(name))


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
