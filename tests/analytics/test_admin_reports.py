"""Admin: the query log and the top-queries and zero-result-queries reports; read-only documents."""
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client

from kbsearch.analytics.models import QueryLog
from kbsearch.analytics.selectors import query_log_top_queries, query_log_zero_result_queries

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_for(db):
    admin = User.objects.create_superuser("root", "root@example.com", "pw-root")
    client = Client()
    client.force_login(admin)
    return client


def test_searches_feed_the_reports(page_client, kb, admin_client_for):
    alice, erin = page_client("alice"), page_client("erin")
    for client in (alice, erin, alice):
        client.get("/", {"q": "VPN setup"})
    erin.get("/", {"q": "vpn  SETUP"})  # same query after normalisation
    erin.get("/", {"q": "VPN setup", "page": "2"})  # paging is not a new search
    alice.get("/", {"q": "salary", "lang": "und"})  # filtered down to nothing
    erin.get("/", {"q": "zzqx"})  # found only by meaning: no keyword match

    top = {row.query: row for row in query_log_top_queries()}
    assert top["vpn setup"].searches == 4 and top["vpn setup"].users == 2
    assert top["vpn setup"].zero_result_searches == 0 and top["vpn setup"].average_latency_ms > 0
    assert list(top)[0] == "vpn setup"
    zero = {row.query: row for row in query_log_zero_result_queries()}
    assert set(zero) == {"salary", "zzqx"}
    assert zero["salary"].zero_result_searches == 1 and zero["zzqx"].no_keyword_match_searches == 1

    page = admin_client_for.get("/admin/analytics/topquery/").content.decode()
    assert "Top queries" in page and "vpn setup" in page and "?query_normalized=vpn+setup" in page
    page = admin_client_for.get("/admin/analytics/zeroresultquery/", {"days": "all"}).content.decode()
    assert "zzqx" in page and "salary" in page and "vpn setup" not in page
    log = admin_client_for.get("/admin/analytics/querylog/", {"query_normalized": "vpn setup"})
    assert log.status_code == 200 and log.content.decode().count("VPN setup") >= 3
    index = admin_client_for.get("/admin/").content.decode()
    assert "Top queries" in index and "Zero-result queries" in index


def test_report_periods(page_client, kb, admin_client_for):
    page_client("erin").get("/", {"q": "old question"})
    QueryLog.objects.update(created_at=QueryLog.objects.get().created_at - timedelta(days=10))
    page_client("erin").get("/", {"q": "new question"})
    week = admin_client_for.get("/admin/analytics/topquery/", {"days": "7"}).content.decode()
    assert "new question" in week and "old question" not in week
    everything = admin_client_for.get("/admin/analytics/topquery/", {"days": "all"}).content.decode()
    assert "old question" in everything
    assert admin_client_for.get("/admin/analytics/topquery/", {"days": "banana"}).status_code == 200


def test_reports_need_permission_to_read_the_log(page_client, kb, users):
    staff = User.objects.create_user("staff", password="pw", is_staff=True)
    client = Client()
    client.force_login(staff)
    assert client.get("/admin/analytics/topquery/").status_code == 403


def test_documents_are_read_only_in_the_admin(kb, admin_client_for):
    document = kb["public/vpn.en.md"]
    page = admin_client_for.get(f"/admin/documents/document/{document.pk}/change/")
    assert page.status_code == 200 and "public" in page.content.decode()
    assert admin_client_for.post(f"/admin/documents/document/{document.pk}/change/", {"title": "x"}).status_code == 403
    assert admin_client_for.get(f"/admin/documents/document/{document.pk}/delete/").status_code == 403
    assert admin_client_for.get("/admin/documents/source/").status_code == 200
