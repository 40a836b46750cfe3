"""The fake Confluence's auth, Cloud/Data Center differences, injected faults, request log and scale."""
import types

import pytest
import requests

from tests.fakes import http as fake_http
from tests.fakes.confluence import FakeConfluence
from tests.fakes.spec_check import walk


# -- auth ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("confluence_server", ["cloud", "dc"], indirect=True)
def test_wrong_or_missing_credentials_are_401(confluence_server):
    fake = confluence_server
    url = f"{fake.api_url}/space"
    assert fake.session().get(url).status_code == 200
    assert requests.get(url).status_code == 401
    assert requests.get(url, auth=(fake.service_user.email, "wrong")).status_code == 401
    assert requests.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    token = fake.token()
    other_scheme = {"Authorization": f"Bearer {token}"} if fake.cloud else None
    response = requests.get(url, headers=other_scheme, auth=None if fake.cloud else (fake.service_user.email, token))
    assert response.status_code == 401
    assert response.json()["statusCode"] == 401


def test_user_without_use_permission_gets_403(confluence_server):
    fake = confluence_server
    guest = fake.add_user("guest", can_use=False)
    assert fake.session(guest).get(f"{fake.api_url}/content").status_code == 403
    assert fake.session(guest).get(f"{fake.v2_url}/spaces").json()["errors"][0]["status"] == 403


# -- Cloud and Data Center ----------------------------------------------------------------------
def test_data_center_prefix_identities_and_timestamps(site_dc):
    fake = site_dc
    session = fake.session()
    root = fake.app.root_url
    assert session.get(f"{root}/wiki/rest/api/space").status_code == 404
    assert session.get(f"{root}/wiki/api/v2/spaces").status_code == 404
    body = session.get(f"{root}/rest/api/content/{fake.secret.id}", params={
        "expand": "restrictions.read.restrictions.user,restrictions.read.restrictions.group,version"}).json()
    [user] = body["restrictions"]["read"]["restrictions"]["user"]["results"]
    assert (user["username"], user["userKey"], "accountId" in user) == ("alice", fake.alice.user_key, False)
    assert body["restrictions"]["read"]["restrictions"]["group"]["results"][0]["name"] == "eng"
    assert body["version"]["when"] == "2024-03-01T09:00:00.000+00:00"
    assert body["_links"]["base"] == root and body["_links"]["context"] == ""


def test_cloud_does_not_answer_on_the_data_center_prefix(site):
    assert site.session().get(f"{site.app.root_url}/rest/api/space").status_code == 404


@pytest.fixture
def site_dc():
    with FakeConfluence(cloud=False) as fake:
        fake.alice = fake.add_user("alice", groups=("eng",))
        eng = fake.site.add_space("ENG")
        fake.secret = fake.site.add_page(eng, "Secret")
        fake.site.restrict_read(fake.secret, users=(fake.alice,), groups=("eng",))
        yield fake


# -- faults -------------------------------------------------------------------------------------
def test_500_on_the_nth_listing_then_recovery(site):
    site.faults.fail(r"/content$", nth=2, status=500)
    session = site.session()
    first = session.get(f"{site.api_url}/content", params={"spaceKey": "ENG", "limit": 2}).json()
    next_url = first["_links"]["base"] + first["_links"]["next"]
    failed = session.get(next_url)
    assert failed.status_code == 500 and failed.json()["statusCode"] == 500
    assert [c["id"] for c in session.get(next_url).json()["results"]] == [site.inner.id, site.open.id]


def test_dropped_connection(site):
    site.faults.drop(r"/space$")
    with pytest.raises(requests.ConnectionError):
        site.session().get(f"{site.api_url}/space")
    assert site.session().get(f"{site.api_url}/space").status_code == 200
    assert [r.status for r in site.log.records if r.path.endswith("/space")] == [None, 200]


@pytest.mark.parametrize("kind, check", [
    ("missing_title", lambda item: "title" not in item),
    ("wrong_type", lambda item: item["type"] == 42),
    ("null_id", lambda item: item["id"] is None),
    ("not_object", lambda item: item == "<unexpected>"),
])
def test_malformed_item_in_a_listing(site, kind, check):
    site.malformed_item(r"/content$", index=1, kind=kind)
    session = site.session()
    results = session.get(f"{site.api_url}/content", params={"spaceKey": "ENG"}).json()["results"]
    assert check(results[1]) and results[0]["title"] == "Home"
    assert session.get(f"{site.api_url}/content", params={"spaceKey": "ENG"}).json()["results"][1]["title"] == "Secret"


@pytest.mark.parametrize("status", [429, 503])
def test_throttle_storm_with_retry_after(site, status):
    site.faults.throttle(3, retry_after=0.05, status=status)
    session = site.session()
    answers = [session.get(f"{site.api_url}/space") for _ in range(4)]
    assert [a.status_code for a in answers] == [status, status, status, 200]
    assert answers[0].headers["Retry-After"] == "0.05"
    site.faults.throttle(1, retry_after=2)
    assert session.get(f"{site.api_url}/space").headers["Retry-After"] == "2"


def test_page_deleted_between_listing_and_fetch(site):
    site.delete_after_listing(site.open)
    session = site.session()
    listed = [c["id"] for c in session.get(f"{site.api_url}/content", params={"spaceKey": "ENG"}).json()["results"]]
    assert site.open.id in listed
    gone = session.get(f"{site.api_url}/content/{site.open.id}")
    assert gone.status_code == 404 and gone.json()["reason"] == "Not Found"
    trashed = session.get(f"{site.api_url}/content/{site.open.id}", params={"status": "trashed"})
    assert trashed.json()["status"] == "trashed"
    assert site.open.id not in [c["id"] for c in session.get(f"{site.api_url}/content", params={"spaceKey": "ENG"}).json()["results"]]


def test_slow_responses(site, monkeypatch):
    # The fake's own sleeps are recorded rather than slept: which requests wait, and how long, is
    # exact; a wall-clock threshold would only measure the machine.
    slept = []
    monkeypatch.setattr(fake_http, "time", types.SimpleNamespace(monotonic=fake_http.time.monotonic, sleep=slept.append))
    site.faults.delay(r"/space$", 0.3, times=1)
    session = site.session()
    assert session.get(f"{site.api_url}/space").status_code == 200
    assert slept == [0.3]
    assert session.get(f"{site.api_url}/content").status_code == 200  # not matched: no wait
    assert session.get(f"{site.api_url}/space").status_code == 200  # times=1 spent: no wait
    assert slept == [0.3]


# -- request log --------------------------------------------------------------------------------
def test_request_log_counts_calls_of_an_incremental_poll(site):
    s = site.site
    s.clock.advance(hours=3)
    changed = [site.open, site.inner]
    for page in changed:
        s.edit(page)
    site.log.clear()
    session = site.session()
    found, _ = walk(session, f"{site.api_url}/content/search",
                    {"cql": 'space = ENG and lastmodified >= "2024-03-01 12:00"', "expand": "body.storage,version"})
    for item in found:
        session.get(f"{site.api_url}/content/{item['id']}/restriction/byOperation/read")
    session.get(f"{site.api_url}/content/424242")
    assert {i["id"] for i in found} == {p.id for p in changed}
    assert len(site.log) == 4
    assert site.log.count(r"/content/search$") == 1
    assert site.log.count(r"/restriction/", method="GET", status=200) == 2
    assert site.log.count(status=404) == 1
    assert {r.principal for r in site.log.records} == {"svc-kbsearch"}
    assert site.log.records[0].query["cql"] == ['space = ENG and lastmodified >= "2024-03-01 12:00"']


# -- scale --------------------------------------------------------------------------------------
def test_ten_thousand_pages_list_whole_with_restricted_subtrees(confluence_server):
    fake = confluence_server
    space = fake.site.add_space("BIG")
    # How fast this runs is bench/bench_confluence.py's question; here, that the listing is whole.
    populated = fake.populate(space, 10_000, n_blogposts=5)
    reader = fake.add_user("reader", groups=("big-readers",))
    fake.site.grant_space(space, "big-readers")
    items, calls = walk(fake.session(), f"{fake.api_url}/content", {"spaceKey": "BIG", "limit": 100, "expand": "version"})
    assert len({i["id"] for i in items}) == len(items) == 10_000 and calls == 100
    restricted_roots = {p.id for p in populated.restricted_roots}
    assert restricted_roots and "big-confidential" not in reader.groups
    parent_of = {p.id: p.parent_id for p in populated.pages}

    def under_restriction(page_id):
        while page_id:
            if page_id in restricted_roots:
                return True
            page_id = parent_of[page_id]
        return False

    expected = {p.id for p in populated.pages if not under_restriction(p.id)}
    assert 0 < len(expected) < 10_000
    seen, _ = walk(fake.session(reader), f"{fake.api_url}/content", {"spaceKey": "BIG", "limit": 100})
    assert {i["id"] for i in seen} == expected
    body = fake.session().get(f"{fake.api_url}/content/{populated.pages[-1].id}", params={"expand": "body.storage"}).json()
    assert "<ac:structured-macro" in body["body"]["storage"]["value"] and "<table>" in body["body"]["storage"]["value"]
