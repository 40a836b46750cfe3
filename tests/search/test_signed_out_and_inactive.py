"""Anonymous and inactive users: refused by every endpoint, and given nothing by every service.

The front ends refuse them (API 401, pages redirect to the sign-in page); the services behind them
fail closed on their own too (no principals, so nothing is found, shown or recorded), which is what
protects callers that have no HTTP layer (commands, tasks) and a front end that forgot a check.
"""
import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import Client
from rest_framework.test import APIClient

from access.resolvers import BasePrincipalResolver, reset_principal_resolver
from kbsearch.analytics.models import Click, Feedback, QueryLog
from kbsearch.analytics.services import click_record, feedback_record
from kbsearch.documents.selectors import (
    DocumentNotFound,
    access_document_by_id,
    place_visible_values,
    source_visible_list,
)
from kbsearch.search.pages import search_page_run
from kbsearch.search.services import search_run
from tests.knowledge_base import knowledge_base_declared

pytestmark = pytest.mark.django_db

FILES = {
    "_access.yaml": "principals: [public]\n",
    "public/vpn.en.md": "# VPN setup\n\nConnect to the VPN from home.\n",
    "hr/_access.yaml": "principals: [group:hr, user:ivan]\n",
    "hr/salary.en.md": "# Salary bands\n\nBand L3 pays a VPN allowance.\n",
}
USERS = {"alice": {"groups": ["hr"]}, "ivan": {"groups": ["hr"], "is_active": False}}


kb_files, kb_users = knowledge_base_declared(FILES, USERS)


class UnreachableDirectoryResolver(BasePrincipalResolver):
    """A directory that is down: the seam leaves the user with no principals (fail closed)."""

    def resolve(self, user) -> frozenset[str]:
        raise ConnectionError("directory unreachable")


def api_calls(client, document_id: int) -> dict:
    return {
        "search": client.get("/api/v1/search", {"q": "VPN"}),
        "document": client.get(f"/api/v1/documents/{document_id}"),
        "feedback": client.post("/api/v1/feedback", {"document_id": document_id, "value": "up", "query": "VPN"}, format="json"),
        "click": client.post("/api/v1/clicks", {"document_id": document_id, "rank": 1, "query": "VPN"}, format="json"),
    }


def page_calls(client, document_id: int) -> dict:
    return {
        "search": client.get("/", {"q": "VPN"}),
        "document": client.get(f"/documents/{document_id}/", {"qid": 1, "rank": 1}),
        "feedback": client.post("/feedback/", {"document_id": document_id, "query_id": 1, "value": "up"}),
    }


def assert_refused_by_the_api(responses: dict, detail: str) -> None:
    for endpoint, response in responses.items():
        assert response.status_code == 401, endpoint
        assert response.json()["detail"] == detail, endpoint
        assert response["WWW-Authenticate"] == "Token", endpoint


def assert_sent_to_sign_in(responses: dict) -> None:
    for endpoint, response in responses.items():
        assert response.status_code == 302, endpoint
        assert response["Location"].startswith("/accounts/login/?next="), endpoint


def assert_nothing_recorded() -> None:
    assert not QueryLog.objects.exists() and not Feedback.objects.exists() and not Click.objects.exists()


def test_anonymous_callers_are_refused_everywhere(kb, users):
    public = kb["public/vpn.en.md"].pk
    assert_refused_by_the_api(api_calls(APIClient(), public), "Authentication credentials were not provided.")
    assert_sent_to_sign_in(page_calls(Client(), public))
    assert_nothing_recorded()


def test_an_inactive_users_token_and_session_stop_working(kb, users, token_client, page_client):
    ivan = users["ivan"]
    public = kb["public/vpn.en.md"].pk
    assert_refused_by_the_api(api_calls(token_client(ivan), public), "User inactive or deleted.")
    session = APIClient()
    session.force_login(ivan)  # a session from before the account was disabled
    assert_refused_by_the_api(api_calls(session, public), "Authentication credentials were not provided.")
    browser = Client()
    browser.force_login(ivan)
    assert_sent_to_sign_in(page_calls(browser, public))
    assert_nothing_recorded()


def test_disabling_an_account_ends_its_access_at_the_next_request(kb, users, token_client):
    alice = users["alice"]
    api = token_client(alice)
    browser = Client()
    browser.force_login(alice)
    salary = kb["hr/salary.en.md"].pk
    assert api.get(f"/api/v1/documents/{salary}").status_code == 200
    assert browser.get(f"/documents/{salary}/").status_code == 200
    alice.is_active = False
    alice.save(update_fields=["is_active"])
    assert api.get(f"/api/v1/documents/{salary}").status_code == 401
    assert api.get("/api/v1/search", {"q": "salary"}).status_code == 401
    assert browser.get(f"/documents/{salary}/").status_code == 302


@pytest.mark.parametrize("who", ["anonymous", "inactive"])
def test_services_give_nothing_to_anonymous_or_inactive_users(kb, users, tiny_encoder, who):
    """Named directly in the hidden document's access list, the inactive user still gets nothing."""
    user = AnonymousUser() if who == "anonymous" else users["ivan"]
    response = search_run(user=user, query="VPN salary", encoder=tiny_encoder)
    assert response.results == [] and response.total == 0
    assert response.facets == {"source": {}, "language": {}, "place": {}}
    page = search_page_run(user=user, query="VPN salary", channel="api", encoder=tiny_encoder)
    assert page.items == [] and page.total == 0
    assert list(source_visible_list(user=user)) == []
    assert place_visible_values(user=user, values=["share:hr", "share:public"]) == set()
    for document in kb.values():
        with pytest.raises(DocumentNotFound):
            access_document_by_id(document.pk, user)
        with pytest.raises(DocumentNotFound):
            feedback_record(user=user, document_id=document.pk, value=1, query="VPN")
        with pytest.raises(DocumentNotFound):
            click_record(user=user, document_id=document.pk, rank=1, query="VPN")
    assert not Feedback.objects.exists() and not Click.objects.exists()


def test_a_signed_in_user_whose_principals_cannot_be_resolved_gets_empty_results_not_an_error(
    kb, users, token_client, page_client, settings
):
    """Failing closed must still answer: no results, and the document is as missing as any other."""
    settings.KBSEARCH_PRINCIPAL_RESOLVER = f"{__name__}.UnreachableDirectoryResolver"
    reset_principal_resolver()
    try:
        response = token_client(users["alice"]).get("/api/v1/search", {"q": "VPN"})
        assert response.status_code == 200, response.content
        assert response.json()["results"] == [] and response.json()["total"] == 0
        page = page_client("alice").get("/", {"q": "VPN"})
        assert page.status_code == 200 and 'class="result"' not in page.content.decode()
        assert token_client(users["alice"]).get(f"/api/v1/documents/{kb['public/vpn.en.md'].pk}").status_code == 404
    finally:
        reset_principal_resolver()
