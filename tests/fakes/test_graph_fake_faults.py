"""The fake Graph server's programmable faults and its request log.

Each fault fires on exactly the requests it was told to, then the fake answers normally again;
retrying a delta page after a fault neither skips nor repeats items.
"""
import pytest
import requests


def test_throttling_answers_429_with_retry_after_for_the_next_n_requests(contoso):
    t, session = contoso, contoso.session()
    t.graph.faults.throttle(2, retry_after=0.05, match="/sites")
    statuses = [session.get(t.url("/sites?search=*")) for _ in range(3)]
    assert [a.status_code for a in statuses] == [429, 429, 200]
    assert statuses[0].headers["Retry-After"] == "0.05"
    assert statuses[0].json()["error"]["code"] == "activityLimitReached"


def test_503_with_a_whole_second_retry_after(contoso):
    t, session = contoso, contoso.session()
    t.graph.faults.throttle(retry_after=0, status=503)
    unavailable = session.get(t.url(f"/drives/{t.drive.id}"))
    assert unavailable.status_code == 503 and unavailable.headers["Retry-After"] == "0"
    assert unavailable.json()["error"]["code"] == "serviceNotAvailable"
    assert session.get(t.url(f"/drives/{t.drive.id}")).status_code == 200


def test_a_500_mid_walk_then_retrying_the_same_next_link_loses_nothing(contoso):
    t, session = contoso, contoso.session()
    t.tenant.delta_page_size = 2
    t.graph.faults.fail(500, match="token=", skip=1)  # the second nextLink fails once
    url, seen, failures = t.url(f"/drives/{t.drive.id}/root/delta"), [], 0
    while url:
        answer = session.get(url)
        if answer.status_code == 500:
            failures += 1
            assert answer.json()["error"]["code"] == "generalException"
            continue
        body = answer.json()
        seen.extend(i["id"] for i in body["value"])
        url = body.get("@odata.nextLink")
    assert failures == 1 and len(seen) == len(set(seen)) == 6


def test_a_dropped_connection_before_and_during_the_answer(contoso):
    t, session = contoso, contoso.session()
    t.graph.faults.drop_connection(match="/permissions")
    with pytest.raises(requests.ConnectionError):
        session.get(t.url(f"/drives/{t.drive.id}/items/{t.leave.id}/permissions"))
    t.graph.faults.drop_connection(match="/permissions", mid_body=True)
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
        session.get(t.url(f"/drives/{t.drive.id}/items/{t.leave.id}/permissions"))
    assert session.get(t.url(f"/drives/{t.drive.id}/items/{t.leave.id}/permissions")).status_code == 200
    assert [e.status for e in t.graph.log.entries if "/permissions" in e.path] == [None, 200, 200]


def test_a_malformed_item_in_a_delta_page(contoso):
    t, session = contoso, contoso.session()
    t.graph.faults.malformed_delta_item()
    first = session.get(t.url(f"/drives/{t.drive.id}/root/delta")).json()["value"]
    broken = [i for i in first if "id" not in i]
    assert broken == [{"@odata.type": "#microsoft.graph.driveItem", "name": 42, "file": "broken"}]
    assert len(first) == 7  # the six real items are all still there
    again = session.get(t.url(f"/drives/{t.drive.id}/root/delta")).json()["value"]
    assert all("id" in i for i in again)


def test_a_hook_deletes_an_item_between_delta_and_its_content_fetch(contoso):
    t, session = contoso, contoso.session()
    t.graph.faults.before(lambda: t.tenant.item_delete(t.readme), match=f"/items/{t.readme.id}/content")
    answer = session.get(t.url(f"/drives/{t.drive.id}/items/{t.readme.id}/content"))
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "itemNotFound"


def test_410_on_a_delta_token_can_be_injected_by_expiring_tokens_mid_walk(contoso):
    t, session = contoso, contoso.session()
    t.tenant.delta_page_size = 4
    first = session.get(t.url(f"/drives/{t.drive.id}/root/delta")).json()
    t.tenant.delta_tokens.expire()
    gone = session.get(first["@odata.nextLink"])
    assert gone.status_code == 410 and "/root/delta?token=" in gone.headers["Location"]


def test_the_request_log_counts_every_call(contoso):
    t = contoso
    session = t.session()
    t.tenant.delta_page_size = 2
    t.graph.faults.throttle(1, match="/delta")
    t.graph.log.clear()
    session.get(t.url(f"/drives/{t.drive.id}/root/delta"))
    t.delta_walk(session)
    session.get(t.url(f"/drives/{t.drive.id}/items/{t.leave.id}/content"))
    requests.get(t.url("/sites?search=*"))
    log = t.graph.log
    assert log.count(path_contains="/root/delta") == 1 + 3
    assert log.count(path_contains="/root/delta", status=429) == 1
    assert log.count(path_contains="/content", status=302) == 1
    assert log.count(path_contains="/_layouts/15/download.aspx", status=200) == 1
    assert log.count(status=401) == 1
    pages = [e for e in log.entries if e.path.endswith("/root/delta") and e.status == 200]
    assert [("token" in e.query) for e in pages] == [False, True, True]
    assert all(e.authorized for e in pages) and len(log.entries) == 7


def test_faults_match_only_their_method_and_path(contoso):
    t, session = contoso, contoso.session()
    t.graph.faults.fail(503, match="/pages")
    assert session.get(t.url(f"/sites/{t.site.id}")).status_code == 200
    assert session.get(t.url(f"/sites/{t.site.id}/pages")).status_code == 503
    assert t.graph.faults.pending == []


def test_the_plain_fixture_serves_an_empty_tenant(fake_graph):
    fake_graph.tenant.apps.app_add(client_id="app", secret="s")
    token = requests.post(fake_graph.token_url, data={"grant_type": "client_credentials", "client_id": "app",
                                                      "client_secret": "s",
                                                      "scope": "https://graph.microsoft.com/.default"}).json()
    answer = requests.get(f"{fake_graph.graph_url}/sites?search=*",
                          headers={"Authorization": f"Bearer {token['access_token']}"})
    assert answer.status_code == 200 and answer.json()["value"] == []
