"""Queries needing attention: zero results, most thumbs down, low click-through above a minimum
volume; counts only, each query linked to its searches in the log, for log readers only."""
import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from kbsearch.analytics.models import Click, Feedback, QueryLog
from kbsearch.analytics.selectors import feedback_most_downvoted_queries, query_log_low_click_through_queries

pytestmark = pytest.mark.django_db

ATTENTION = "/admin/analytics/queryneedingattention/"


def searched(client, query: str, times: int = 1) -> None:
    for _ in range(times):
        assert client.get("/", {"q": query}).status_code == 200


def opened(user, query: str, document, rank: int = 1) -> None:
    """A click on the latest logged search of ``query``."""
    query_log = QueryLog.objects.filter(query=query, user=user).latest("created_at")
    Click.objects.create(user=user, document=document, query=query, query_log=query_log, rank=rank)


@pytest.fixture
def history(page_client, kb, users):
    alice, erin = page_client("alice"), page_client("erin")
    vpn = kb["public/vpn.en.md"]
    searched(erin, "VPN setup", 4)
    opened(users["erin"], "VPN setup", vpn)  # 1 in 4 opened, too few searches at the default minimum of 5
    searched(alice, "VPN setup", 2)  # now 6 searches, 1 with a click: 17 %
    searched(erin, "gateway", 5)
    for _ in range(3):
        opened(users["erin"], "gateway", vpn)  # 3 of 5 would be 60 %, but clicks go to the latest search only
    searched(erin, "zzqx")
    searched(alice, "backup")
    for user, value in ((users["erin"], -1), (users["alice"], -1)):
        query_log = QueryLog.objects.filter(user=user).latest("created_at")
        Feedback.objects.create(user=user, document=vpn, query=query_log.query, query_log=query_log, value=value)
    Feedback.objects.create(user=users["erin"], document=vpn, query="Handbook", value=1)


def test_low_click_through_needs_volume_and_few_clicks(history):
    low = {row.query: row for row in query_log_low_click_through_queries(min_searches=5)}
    assert set(low) == {"vpn setup", "gateway"}  # gateway: 1 search of 5 with a click (several clicks on one)
    assert (low["vpn setup"].searches, low["vpn setup"].clicked, low["vpn setup"].users) == (6, 1, 2)
    assert low["gateway"].click_through == pytest.approx(0.2)
    assert [row.query for row in query_log_low_click_through_queries(min_searches=6)] == ["vpn setup"]
    assert query_log_low_click_through_queries(min_searches=5, below=0.15) == []


def test_most_thumbs_down_groups_by_the_normalised_query(history):
    rows = feedback_most_downvoted_queries()
    # Equal counts: the most recent first (alice's thumbs on "backup" came after erin's on "zzqx").
    assert [(row.query, row.thumbs_down, row.thumbs_up, row.users) for row in rows] == [
        ("backup", 1, 0, 1), ("zzqx", 1, 0, 1),
    ]
    assert "handbook" not in {row.query for row in rows}  # thumbs up only


def test_the_page_lists_all_three_with_links_to_the_log(history, users):
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    page = client.get(ATTENTION, {"days": "all"}).content.decode()
    zero = page[page.index('id="zero-result-queries"'):page.index('id="thumbs-down"')]
    assert '?query_normalized=zzqx">zzqx</a>' in zero and "vpn setup" not in zero
    downvoted = page[page.index('id="downvoted-queries"'):page.index('id="low-click-through"')]
    assert "zzqx" in downvoted and '?query_normalized=backup">backup</a>' in downvoted
    low = page[page.index('id="low-click-through-queries"'):]
    assert '?query_normalized=vpn+setup">vpn setup</a>' in low and "17%" in low
    assert "erin" not in page and "alice" not in page  # aggregates, never who searched
    stricter = client.get(ATTENTION, {"days": "7", "min_searches": "10"}).content.decode()
    assert "vpn setup" not in stricter[stricter.index('id="low-click-through-queries"'):]
    assert client.get(ATTENTION, {"min_searches": "7000"}).status_code == 200  # a bad value shows the default


def test_staff_without_the_log_permission_are_refused(history, users):
    staff = User.objects.create_user("staff", password="pw", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_feedback"))
    client = Client()
    client.force_login(staff)
    assert client.get(ATTENTION).status_code == 403
    outsider = Client()
    outsider.force_login(users["alice"])
    assert outsider.get(ATTENTION).status_code == 302  # not staff: sent to the admin sign-in
