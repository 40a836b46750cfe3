"""The page's routes spend the API's per-user rate-limit buckets: neither front end bypasses the other."""
import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from kbsearch.analytics.models import Click, Feedback
from kbsearch.web.strings import STRINGS

pytestmark = pytest.mark.django_db


@pytest.fixture
def api_client(users):
    """API clients by user name, authenticating with a token (the same users as the page's)."""

    def make(name: str) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=users[name])[0].key}")
        return client

    return make


@pytest.fixture
def rates(settings):
    """Sets low rates for the named buckets (the others unlimited)."""

    def set_rates(**buckets: str) -> None:
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": buckets}

    return set_rates


def assert_rate_limited_page(response, text_key: str = "rate_title") -> None:
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    assert STRINGS["en"][text_key] in response.content.decode()


def test_searches_on_the_api_and_the_page_share_one_bucket(kb, page_client, api_client, rates):
    rates(search="3/minute")
    api, page = api_client("alice"), page_client("alice")
    assert api.get("/api/v1/search", {"q": "VPN"}).status_code == 200
    assert page.get("/", {"q": "VPN"}).status_code == 200
    assert api.get("/api/v1/search", {"q": "VPN"}).status_code == 200
    limited = page.get("/", {"q": "VPN"})
    assert limited.status_code == 429 and int(limited["Retry-After"]) >= 1
    assert api.get("/api/v1/search", {"q": "VPN"}).status_code == 429
    # Per user: erin's budget is untouched by alice's searches.
    assert page_client("erin").get("/", {"q": "VPN"}).status_code == 200


def test_the_document_page_and_the_documents_api_share_one_bucket(kb, page_client, api_client, rates):
    rates(documents="2/minute")
    document_id = kb["public/vpn.en.md"].pk
    api, page = api_client("alice"), page_client("alice")
    assert api.get(f"/api/v1/documents/{document_id}").status_code == 200
    assert page.get(f"/documents/{document_id}/").status_code == 200
    assert_rate_limited_page(page.get(f"/documents/{document_id}/"))
    assert api.get(f"/api/v1/documents/{document_id}").status_code == 429
    assert page_client("erin").get(f"/documents/{document_id}/").status_code == 200


def test_hidden_documents_are_counted_too(kb, page_client, rates):
    # Probing ids costs the same as reading: the limit applies before the visibility check.
    rates(documents="2/minute")
    page = page_client("erin")
    hidden = kb["hr/salary.en.md"].pk
    assert page.get(f"/documents/{hidden}/").status_code == 404
    assert page.get(f"/documents/{hidden}/").status_code == 404
    assert_rate_limited_page(page.get(f"/documents/{kb['public/vpn.en.md'].pk}/"))


def test_the_feedback_form_shares_the_feedback_and_clicks_bucket(kb, page_client, api_client, rates):
    rates(feedback="3/minute")
    api, page = api_client("alice"), page_client("alice")
    query_id = api.get("/api/v1/search", {"q": "VPN"}).json()["query_id"]
    document_id = kb["public/vpn.en.md"].pk
    form = {"document_id": document_id, "query_id": query_id, "value": "up", "next": "/"}
    assert api.post("/api/v1/feedback", {**form}, format="json").status_code == 201
    assert api.post("/api/v1/clicks", {"document_id": document_id, "query_id": query_id, "rank": 1}, format="json").status_code == 201
    assert page.post("/feedback/", {**form, "value": "down"}).status_code == 303
    assert_rate_limited_page(page.post("/feedback/", form))
    assert api.post("/api/v1/feedback", form, format="json").status_code == 429
    # The refused vote changed nothing: the page's "down" is the last one recorded.
    assert list(Feedback.objects.values_list("value", flat=True)) == [Feedback.Value.DOWN]


def test_a_click_from_the_document_page_spends_the_feedback_bucket(kb, page_client, api_client, rates):
    rates(feedback="1/minute")
    api, page = api_client("alice"), page_client("alice")
    first = api.get("/api/v1/search", {"q": "VPN"}).json()["query_id"]
    second = api.get("/api/v1/search", {"q": "gateway"}).json()["query_id"]
    document_id = kb["public/vpn.en.md"].pk
    assert page.get(f"/documents/{document_id}/", {"qid": first, "rank": 1}).status_code == 200
    assert list(Click.objects.values_list("query_log_id", flat=True)) == [first]
    # The bucket is spent: the document still opens, but this click is not recorded, and the
    # clicks API refuses one too.
    opened = page.get(f"/documents/{document_id}/", {"qid": second, "rank": 1})
    assert opened.status_code == 200 and "VPN setup" in opened.content.decode()
    assert list(Click.objects.values_list("query_log_id", flat=True)) == [first]
    refused = api.post("/api/v1/clicks", {"document_id": document_id, "query_id": second, "rank": 1}, format="json")
    assert refused.status_code == 429


def test_the_page_limit_message_is_in_the_browsers_language(kb, page_client, rates):
    rates(documents="1/minute")
    page = page_client("alice", accept_language="ja")
    document_id = kb["public/vpn.en.md"].pk
    assert page.get(f"/documents/{document_id}/").status_code == 200
    limited = page.get(f"/documents/{document_id}/")
    assert limited.status_code == 429
    seconds = int(limited["Retry-After"])
    assert STRINGS["ja"]["rate_text"].format(seconds=seconds) in limited.content.decode()
