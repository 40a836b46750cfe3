"""The training-data browser: staff with ``relevance.view_training_data`` only; staff without it
get 403, everyone else the admin's sign-in."""
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from tests.relevance.conftest import search_and_click

LIST = "/admin/relevance/trainingdatasnapshot/"


@pytest.fixture
def snapshot(kb, users, doc, build, base_time):
    search_and_click(users["bob"], "vpn client", doc("vpn"), rank=2, at=base_time)
    search_and_click(users["carol"], "office printer", doc("printer"), rank=1, at=base_time + timedelta(hours=1))
    built, _ = build(corpus_per_document=1, heldout_fraction=0.5)  # "office printer" is held out
    return built


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _staff(name: str, *, may_read: bool) -> User:
    user = User.objects.create_user(name, password="x", is_staff=True)
    if may_read:
        user.user_permissions.add(Permission.objects.get(codename="view_training_data", content_type__app_label="relevance"))
    return User.objects.get(pk=user.pk)  # permissions are cached per instance


def test_others_are_refused(snapshot, users, settings):
    settings.KBSEARCH_WARM_ENCODER = False
    page = f"{LIST}{snapshot.pk}/change/"
    for path in (LIST, page):
        anonymous = Client().get(path)
        assert anonymous.status_code == 302 and anonymous["Location"].startswith("/admin/login/")
        assert _client(users["bob"]).get(path).status_code == 302  # not staff: the admin's sign-in
    staff = _staff("operator", may_read=False)
    # Even the ordinary view permission on the model is not enough: the rows are personal.
    staff.user_permissions.add(Permission.objects.get(codename="view_trainingdatasnapshot"))
    staff = User.objects.get(pk=staff.pk)
    for path in (LIST, page, f"{page}?part=heldout"):
        response = _client(staff).get(path)
        assert response.status_code == 403, path
        assert b"vpn client" not in response.content
    index = _client(staff).get("/admin/")
    assert index.status_code == 200 and b"trainingdatasnapshot" not in index.content


def test_staff_with_the_permission_list_page_and_search(snapshot, settings):
    settings.KBSEARCH_WARM_ENCODER = False
    client = _client(_staff("analyst", may_read=True))
    listing = client.get(LIST)
    assert listing.status_code == 200 and snapshot.sha256[:12].encode() in listing.content
    assert b"trainingdatasnapshot" in client.get("/admin/").content
    page = client.get(f"{LIST}{snapshot.pk}/change/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "<td>vpn client</td>" in text and "<td>Printer guide &gt; Add a printer</td>" in text
    assert snapshot.sha256 in text and "Download the VPN client" in text
    assert "<td>office printer</td>" not in text  # held out: not a training row
    found = client.get(f"{LIST}{snapshot.pk}/change/", {"q": "VPN Client"}).content.decode()
    assert "<td>vpn client</td>" in found and "<td>Printer guide" not in found and "1 row " in found
    held = client.get(f"{LIST}{snapshot.pk}/change/", {"part": "heldout"}).content.decode()
    assert "<td>office printer</td>" in held and "<td>vpn client</td>" not in held
    assert client.get(f"{LIST}{snapshot.pk}/change/", {"page": "999", "part": "bogus"}).status_code == 200
    assert client.get(f"{LIST}999999/change/").status_code == 404
    assert client.post(f"{LIST}{snapshot.pk}/delete/").status_code == 403


def test_rows_page_at_a_time(kb, users, doc, build, base_time, settings):
    settings.KBSEARCH_WARM_ENCODER = False
    for hour in range(60):
        search_and_click(users["bob"], f"printer {hour}", doc("printer"), rank=1, at=base_time + timedelta(hours=hour))
    snapshot, rows = build(negatives_per_pair=0)
    assert len(rows) == 60
    client = _client(User.objects.create_superuser("root", password="x"))
    first = client.get(f"{LIST}{snapshot.pk}/change/").content.decode()
    second = client.get(f"{LIST}{snapshot.pk}/change/", {"page": 2}).content.decode()
    assert "page 1 of 2" in first and "page 2 of 2" in second
    assert "<td>printer 0</td>" in first and "<td>printer 59</td>" in second
    assert "<td>printer 59</td>" not in first


def test_a_snapshot_whose_files_are_gone_says_so(snapshot, settings, tmp_path):
    import shutil

    settings.KBSEARCH_WARM_ENCODER = False
    shutil.rmtree(snapshot.path)
    client = _client(_staff("analyst", may_read=True))
    response = client.get(f"{LIST}{snapshot.pk}/change/")
    assert response.status_code == 200 and "cannot read" in response.content.decode()
