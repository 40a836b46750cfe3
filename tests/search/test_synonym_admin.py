"""The synonym sets' admin: model permissions decide who may list and change them; bad sets are refused."""
import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from kbsearch.search.models import SynonymRevision, SynonymSet
from kbsearch.search.synonyms import synonym_revision

pytestmark = pytest.mark.django_db

ADD = "/admin/search/synonymset/add/"
LIST = "/admin/search/synonymset/"


def signed_in(name: str, *, superuser: bool = False, staff: bool = True, permissions: tuple[str, ...] = ()) -> Client:
    if superuser:
        user = User.objects.create_superuser(name, f"{name}@example.com", "pw")
    else:
        user = User.objects.create_user(name, password="pw", is_staff=staff)
        user.user_permissions.set(Permission.objects.filter(content_type__app_label="search", codename__in=permissions))
    client = Client()
    client.force_login(user)
    return client


def form(**values) -> dict:
    return {"kind": "equivalent", "terms": "", "expansions": "", "language": "", "enabled": "on", "note": "", **values}


def test_an_admin_adds_a_set_and_sees_how_it_is_analysed():
    client = signed_in("root", superuser=True)
    before = synonym_revision()
    response = client.post(ADD, form(terms="PRD\nproduct requirements document\n产品需求文档"))
    assert response.status_code == 302, response.content.decode()[:2000]
    synonym_set = SynonymSet.objects.get()
    assert synonym_revision() != before and SynonymRevision.objects.get().number >= 1
    page = client.get(f"/admin/search/synonymset/{synonym_set.pk}/change/").content.decode()
    assert "产品 品需 需求 求文 文档" in page and "product requirement document" in page
    assert "PRD = product requirements document" in client.get(LIST).content.decode()
    response = client.post(f"/admin/search/synonymset/{synonym_set.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302 and not SynonymSet.objects.exists()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"terms": "PRD"}, "at least two different phrases"),
        ({"terms": "PRD\nprd"}, "at least two different phrases"),  # the same once analysed
        ({"terms": "PRD\n!!!"}, "has no searchable word"),
        ({"terms": "PRD\nspec", "expansions": "x"}, "Only one-way sets have expansions"),
        ({"kind": "one_way", "terms": "PRD"}, "needs at least one term and one expansion"),
        ({"terms": "a" * 201 + "\nspec"}, "at most 200 characters"),
    ],
)
def test_bad_sets_are_refused_with_the_reason(values, message):
    response = signed_in("root", superuser=True).post(ADD, form(**values))
    assert response.status_code == 200 and message in response.content.decode()
    assert not SynonymSet.objects.exists()


def test_staff_need_the_model_permissions():
    SynonymSet.objects.create(terms="PRD\nspec")
    plain = signed_in("plain")
    assert plain.get(LIST).status_code == 403
    assert plain.post(ADD, form(terms="OKR\nobjectives and key results")).status_code == 403
    viewer = signed_in("viewer", permissions=("view_synonymset",))
    assert viewer.get(LIST).status_code == 200
    assert viewer.post(ADD, form(terms="OKR\nobjectives and key results")).status_code == 403
    editor = signed_in("editor", permissions=("view_synonymset", "add_synonymset"))
    assert editor.post(ADD, form(terms="OKR\nobjectives and key results")).status_code == 302
    assert SynonymSet.objects.count() == 2
    outsider = signed_in("outsider", staff=False, permissions=("view_synonymset", "add_synonymset"))
    assert outsider.get(LIST).status_code == 302  # not staff: sent to the admin sign-in
