"""The permissions pages are for admins only, and bad input gets a clear error, never a crash."""
import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

PAGES = ["/admin/permissions/effective-access/", "/admin/permissions/why/", "/admin/permissions/who/"]


@pytest.fixture
def queries(kb):
    document = kb["hr/salaries.md"].pk
    return [{"username": "alice"}, {"username": "alice", "document": document}, {"document": document}]


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("who", ["anonymous", "employee", "inactive staff"])
def test_no_one_but_staff_reaches_the_pages(kb, users, queries, who):
    if who == "anonymous":
        client = Client()
    elif who == "employee":
        client = signed_in(users["eve"])
    else:
        client = signed_in(User.objects.create_user("former", password="x", is_staff=True, is_active=False))
    for page, query in zip(PAGES, queries, strict=True):
        response = client.get(page, query)
        assert response.status_code == 302, page
        assert response["Location"].startswith("/admin/login/"), page
        body = response.content.decode()
        assert "Salaries" not in body and "group:hr" not in body


def test_staff_without_the_view_permissions_is_refused(kb, users, queries):
    clerk = User.objects.create_user("clerk", password="x", is_staff=True)
    client = signed_in(clerk)
    for page, query in zip(PAGES, queries, strict=True):
        assert client.get(page, query).status_code == 403, page
    clerk.user_permissions.add(Permission.objects.get(codename="view_directoryuser"))
    assert client.get(PAGES[0], queries[0]).status_code == 403  # documents too are shown
    clerk.user_permissions.add(Permission.objects.get(codename="view_document"))
    client = signed_in(User.objects.get(pk=clerk.pk))  # permissions are cached per user object
    for page, query in zip(PAGES, queries, strict=True):
        assert client.get(page, query).status_code == 200, page
    index = client.get("/admin/").content.decode()
    assert PAGES[1] in index


def test_staff_without_the_view_permissions_get_no_answer_computed(kb, users, queries, monkeypatch):
    # Refused before the form is read: not even "no account is named ..." may be worked out for them.
    from kbsearch.permissions import views

    def must_not_run(**_kwargs):
        raise AssertionError("answered for staff without the view permissions")

    for name in ("user_access_explain", "document_access_explain", "document_audience"):
        monkeypatch.setattr(views, name, must_not_run)
    monkeypatch.setattr(views.AccountForm, "is_valid", lambda form: must_not_run())
    client = signed_in(User.objects.create_user("clerk", password="x", is_staff=True))
    for page, query in zip(PAGES, queries, strict=True):
        assert client.get(page, query).status_code == 403, page


def test_index_hides_the_section_from_staff_without_the_permissions(kb, users):
    clerk = User.objects.create_user("clerk", password="x", is_staff=True)
    assert "/admin/permissions/" not in signed_in(clerk).get("/admin/").content.decode()


def test_empty_forms_show_no_answer(kb, users, admin_client):
    for page in PAGES:
        response = admin_client.get(page)
        assert response.status_code == 200
        assert response.context["form"].errors == {}


@pytest.mark.parametrize(
    "query, field, message",
    [
        ({"document": "abc"}, "document", "Enter a whole number."),
        ({"document": "0"}, "document", "greater than or equal to 1"),
        ({"document": "987654321"}, "document", "No document has id 987654321."),
        ({"document": "99999999999999999999999"}, "document", "No document has id"),
    ],
)
def test_bad_document_ids_are_form_errors(kb, users, admin_client, query, field, message):
    for page in PAGES[1:]:
        response = admin_client.get(page, {"username": "alice", **query})
        assert response.status_code == 200
        assert message in " ".join(response.context["form"].errors[field])
        assert message in response.content.decode().replace("&#x27;", "'")
        assert response.context.get("verdict") is None and response.context.get("audience") is None


def test_unknown_users_are_form_errors_and_names_match_ignoring_case(kb, users, admin_client):
    for page, query in [(PAGES[0], {}), (PAGES[1], {"document": "1"})]:
        response = admin_client.get(page, {"username": "nobody-here", **query})
        assert response.status_code == 200
        assert "No account is named 'nobody-here'" in " ".join(response.context["form"].errors["username"])
    assert admin_client.get(PAGES[0], {"username": "ALICE"}).context["access"].user == users["alice"]
