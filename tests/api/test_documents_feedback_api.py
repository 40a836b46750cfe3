"""GET /api/v1/documents/{id}, POST /api/v1/feedback and POST /api/v1/clicks: visible documents only."""
import pytest
from rest_framework.test import APIClient

from kbsearch.analytics.models import Click, Feedback

pytestmark = pytest.mark.django_db


def document_url(document_id) -> str:
    return f"/api/v1/documents/{document_id}"


def test_a_visible_document_returns_metadata_and_text(clients, kb):
    document = kb["hr/salary.en.md"]
    response = clients["alice"].get(document_url(document.pk))
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == document.pk and body["title"] == "Salary bands"
    assert "7,800,000 JPY" in body["text"] and body["url"] == document.url
    assert body["source"] == {"key": "share", "name": "Shared drive"}
    assert body["language"] == "en" and body["external_id"] == "hr/salary.en.md" and body["version"] == 1
    assert body["updated_at"]


def test_a_hidden_document_is_a_404_indistinguishable_from_a_missing_one(clients, kb):
    missing = clients["bob"].get(document_url(10**12))
    hidden = clients["bob"].get(document_url(kb["hr/salary.en.md"].pk))
    draft = clients["alice"].get(document_url(kb["drafts/osaka.en.md"].pk))
    assert missing.status_code == hidden.status_code == draft.status_code == 404
    assert missing.json() == hidden.json() == draft.json() == {"detail": "Document not found.", "code": "not_found"}


@pytest.mark.parametrize("bad_id", ["abc", "-1", "0", str(2**63), str(10**40), "1.5"])
def test_malformed_document_ids_are_json_404s(clients, kb, bad_id):
    response = clients["alice"].get(document_url(bad_id))
    assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_documents_need_authentication(kb):
    assert APIClient().get(document_url(kb["public/vpn.en.md"].pk)).status_code == 401


def test_feedback_is_stored_with_its_search_and_a_second_vote_replaces_the_first(clients, users, kb):
    search = clients["alice"].get("/api/v1/search", {"q": "salary Tokyo"}).json()
    target = next(r for r in search["results"] if r["document_id"] == kb["hr/salary.en.md"].pk)
    response = clients["alice"].post(
        "/api/v1/feedback", {"document_id": target["document_id"], "value": "up", "query_id": search["query_id"]}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["value"] == "up" and body["query"] == "salary Tokyo" and body["query_id"] == search["query_id"]
    assert body["rank"] == target["rank"]  # taken from the logged result list
    feedback = Feedback.objects.get(pk=body["id"])
    assert feedback.user == users["alice"] and feedback.value == 1 and feedback.query_log_id == search["query_id"]
    again = clients["alice"].post(
        "/api/v1/feedback",
        {"document_id": target["document_id"], "value": "down", "query_id": search["query_id"], "rank": 2},
        format="json",
    )
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    feedback.refresh_from_db()
    assert feedback.value == -1 and feedback.rank == 2 and Feedback.objects.count() == 1


def test_feedback_with_query_text_only(clients, kb):
    response = clients["erin"].post(
        "/api/v1/feedback", {"document_id": kb["public/vpn.zh.md"].pk, "value": "down", "query": " VPN 设置\x07"}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["query"] == "VPN 设置" and response.json()["query_id"] is None


def test_hidden_documents_cannot_be_rated_or_clicked(clients, kb):
    search_id = clients["bob"].get("/api/v1/search", {"q": "VPN"}).json()["query_id"]
    for external_id in ("hr/salary.en.md", "drafts/osaka.en.md"):
        document_id = kb[external_id].pk
        rated = clients["bob"].post(
            "/api/v1/feedback", {"document_id": document_id, "value": "up", "query_id": search_id}, format="json"
        )
        clicked = clients["bob"].post(
            "/api/v1/clicks", {"document_id": document_id, "rank": 1, "query_id": search_id}, format="json"
        )
        missing = clients["bob"].post("/api/v1/clicks", {"document_id": 10**12, "rank": 1, "query": "x"}, format="json")
        assert rated.status_code == clicked.status_code == missing.status_code == 404
        assert rated.json() == clicked.json() == missing.json()
    assert not Feedback.objects.exists() and not Click.objects.exists()


def test_clicks_are_recorded_once_per_search_and_result(clients, users, kb):
    search = clients["bob"].get("/api/v1/search", {"q": "배포"}).json()
    target = search["results"][0]
    payload = {"document_id": target["document_id"], "rank": target["rank"], "query_id": search["query_id"]}
    first = clients["bob"].post("/api/v1/clicks", payload, format="json")
    assert first.status_code == 201
    assert first.json()["rank"] == target["rank"] and first.json()["query"] == "배포"
    second = clients["bob"].post("/api/v1/clicks", payload, format="json")
    assert second.status_code == 200 and second.json()["id"] == first.json()["id"]
    click = Click.objects.get()
    assert click.user == users["bob"] and click.query_log_id == search["query_id"]
    no_log = clients["bob"].post("/api/v1/clicks", {"document_id": target["document_id"], "rank": 3, "query": "deploy"}, format="json")
    assert no_log.status_code == 201 and Click.objects.count() == 2


def test_another_users_query_id_is_rejected(clients, kb):
    alices = clients["alice"].get("/api/v1/search", {"q": "VPN"}).json()["query_id"]
    response = clients["bob"].post(
        "/api/v1/clicks", {"document_id": kb["public/vpn.en.md"].pk, "rank": 1, "query_id": alices}, format="json"
    )
    assert response.status_code == 400
    assert response.json() == {"detail": f"query_id {alices} is not one of your searches", "code": "unknown_query_id"}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"value": "up"}, "give the query text or the query_id"),
        ({"value": "sideways", "query": "vpn"}, "value: \"sideways\" is not a valid choice."),
        ({"value": "up", "query": "x" * 10_000}, "the limit is 1000"),
        ({"value": "up", "query": "\x00\x01"}, "query is empty"),
        ({"value": "up", "query": "vpn", "rank": 0}, "rank:"),
        ({"value": "up", "query": "vpn", "query_id": 2**70}, "query_id:"),
        ({"value": "up", "query": "vpn", "document_id": 2**70}, "document_id:"),
        ({"value": "up", "query": "vpn", "document_id": "seven"}, "document_id: A valid integer is required."),
    ],
)
def test_bad_feedback_is_a_400_with_a_message(clients, kb, payload, message):
    body = {"document_id": kb["public/vpn.en.md"].pk, **payload}
    response = clients["erin"].post("/api/v1/feedback", body, format="json")
    assert response.status_code == 400, response.content
    assert message in response.json()["detail"]


def test_malformed_bodies_are_400s(clients, kb):
    client = clients["erin"]
    for raw, content_type in [("{not json", "application/json"), ("[1, 2]", "application/json"), ("\"text\"", "application/json")]:
        response = client.post("/api/v1/feedback", raw, content_type=content_type)
        assert response.status_code == 400, (raw, response.content)
        assert response.json()["detail"]
    response = client.post("/api/v1/clicks", "document_id=1", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    missing_rank = client.post("/api/v1/clicks", {"document_id": kb["public/vpn.en.md"].pk, "query": "vpn"}, format="json")
    assert missing_rank.status_code == 400 and "rank: This field is required." in missing_rank.json()["detail"]
