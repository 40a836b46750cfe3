"""The place facet and filter (a share's top folder here; a space or a library for the other
connectors): counted over exactly what each user may see, never naming a place they see nothing in,
and filtering inside the index so totals and pages are those of the filtered search.

Expected facets are written by hand from FILES and USERS below."""
import re

import pytest

from kbsearch.search.pages import search_page_run
from kbsearch.search.services import search_run
from tests.knowledge_base import knowledge_base_declared
from tests.leak_checks import page_facets

pytestmark = pytest.mark.django_db

FILES = {
    "_access.yaml": "principals: [public]\n",
    "welcome.en.md": "# Welcome\n\nThe VPN handbook starts here.\n",
    "public/vpn.en.md": "# VPN setup\n\nConnect to the VPN from home.\n",
    "public/wifi.zh.md": "# 无线网络\n\n办公室 VPN 和无线网络设置。\n",
    "hr/_access.yaml": "principals: [group:hr]\n",
    "hr/salary.en.md": "# Salary bands\n\nBand L3 pays a VPN allowance.\n",
    "hr/leave.ja.md": "# 休暇\n\n育児休暇と VPN ノートパソコン。\n",
    "eng/_access.yaml": "principals: [group:engineering]\n",
    "eng/deploy.en.md": "# Deploy\n\nConnect to the VPN, then run the pipeline.\n",
    "eng/open/_access.yaml": "principals: [public]\n",
    "eng/open/readme.en.md": "# Engineering readme\n\nAsk for VPN access in the portal.\n",
}
USERS = {"alice": {"groups": ["hr"]}, "bob": {"groups": ["engineering"]}, "erin": {"groups": []}}
PLACE_FACETS = {
    "alice": {("share:public", "public"): 2, ("share:hr", "hr"): 2, ("share:eng", "eng"): 1},
    "bob": {("share:public", "public"): 2, ("share:eng", "eng"): 2},
    "erin": {("share:public", "public"): 2, ("share:eng", "eng"): 1},
}

kb_files, kb_users = knowledge_base_declared(FILES, USERS)


def search(client, **params):
    return client.get("/api/v1/search", {"q": "VPN", "limit": 50, **params})


def titles(body) -> set[str]:
    return {result["title"] for result in body["results"]}


def test_each_user_gets_exactly_the_places_they_see_documents_in(kb, users, token_client, page_client):
    for name, wanted in PLACE_FACETS.items():
        body = search(token_client(users[name])).json()
        assert {(f["value"], f["label"]): f["count"] for f in body["facets"]["place"]} == wanted, name
        assert body["total"] == sum(wanted.values()) + 1  # and the welcome page, in no place
        page = page_client(name).get("/", {"q": "VPN"}).content.decode()
        assert page_facets(page, "place") == {label: n for (_value, label), n in wanted.items()}, name
    assert "share:hr" not in search(token_client(users["bob"])).content.decode()


def test_a_place_filter_is_applied_in_the_index_with_totals_and_pages_of_its_own(kb, users, token_client):
    alice = token_client(users["alice"])
    body = search(alice, place="share:hr").json()
    assert titles(body) == {"Salary bands", "休暇"} and body["total"] == 2
    assert {f["value"]: f["count"] for f in body["facets"]["place"]} == {"share:hr": 2}
    first, second = (search(alice, place="share:hr", limit=1, offset=offset).json() for offset in (0, 1))
    assert (first["total"], first["next_offset"], second["total"], second["next_offset"]) == (2, 1, 2, None)
    assert titles(first) | titles(second) == {"Salary bands", "休暇"}
    assert search(token_client(users["erin"]), place="share:eng").json()["total"] == 1  # the readme only


def test_places_are_or_ed_and_and_ed_with_source_and_language(kb, users, token_client):
    alice = token_client(users["alice"])
    assert titles(search(alice, place=["share:hr", "share:public"]).json()) == {
        "Salary bands", "休暇", "VPN setup", "无线网络"}
    assert titles(search(alice, place=["share:hr", "share:public"], lang="en").json()) == {"Salary bands", "VPN setup"}
    assert titles(search(alice, place="share:hr", source="share", lang="ja").json()) == {"休暇"}


def test_a_place_the_user_sees_nothing_in_is_as_unknown_as_one_that_does_not_exist(kb, users, token_client):
    bob = token_client(users["bob"])
    hidden, missing = search(bob, place="share:hr"), search(bob, place="share:nope")
    assert hidden.status_code == missing.status_code == 400
    assert hidden.json()["detail"].replace("share:hr", "X") == missing.json()["detail"].replace("share:nope", "X")
    assert hidden.json()["detail"].startswith("unknown place 'share:hr'")
    for bad in ("hr", "share:", ":hr", "x" * 400):
        assert search(bob, place=bad).status_code == 400, bad
    assert search(bob, place=[f"share:p{i}" for i in range(21)]).status_code == 400  # at most 20


def test_the_service_refuses_a_hidden_place_too(kb, users):
    from kbsearch.search.pages import InvalidSearchFilter

    with pytest.raises(InvalidSearchFilter, match="unknown place 'share:hr'"):
        search_page_run(user=users["erin"], query="VPN", channel="api", places=["share:hr"])
    # search_run itself is only ever filtered inside the index and re-checked in the database.
    response = search_run(user=users["erin"], query="VPN", places=frozenset({"share:hr"}))
    assert (response.results, response.total, response.facets["place"]) == ([], 0, {})


def test_the_page_offers_places_as_links_that_filter(kb, page_client):
    client = page_client("alice")
    page = client.get("/", {"q": "VPN"}).content.decode()
    link = re.search(r'<ul class="facet" data-facet="place">.*?<a href="([^"]*place=share%3Ahr[^"]*)"', page, re.S)
    assert link is not None
    filtered = client.get("/" + link.group(1).replace("&amp;", "&")).content.decode()
    assert page_facets(filtered, "place") == {"hr": 2}
    assert 'aria-current="true" class="active">hr <span class="count">2</span>' in filtered
    assert '<input type="hidden" name="place" value="share:hr">' in filtered  # kept by the next search
    assert "of about 2 (" in filtered
    refused = client.get("/", {"q": "VPN", "place": "share:nope"})
    assert refused.status_code == 400


def test_results_and_documents_name_their_place(kb, users, token_client):
    alice = token_client(users["alice"])
    places = {result["title"]: result["place"] for result in search(alice).json()["results"]}
    assert places["Salary bands"] == {"value": "share:hr", "label": "hr"}
    assert places["Engineering readme"] == {"value": "share:eng", "label": "eng"}
    assert places["Welcome"] is None
    detail = alice.get(f"/api/v1/documents/{kb['hr/salary.en.md'].pk}").json()
    assert detail["place"] == {"value": "share:hr", "label": "hr"}
