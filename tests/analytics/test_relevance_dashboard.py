"""The relevance dashboard: figures per day and week aggregated in the database, drawn as inline
SVG with the numbers in a table, shown only to staff who may read the query log.

The log is written row by row here (not by searching) so every expected figure is worked out by
hand: three days ago four first-page searches and one second page; yesterday one search and the
thumbs.
"""
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.utils import timezone

from kbsearch.analytics.models import Click, Feedback, QueryLog
from kbsearch.analytics.selectors import relevance_over_time

pytestmark = pytest.mark.django_db

DASHBOARD = "/admin/analytics/relevancedashboard/"


def noon(days_ago: int):
    return timezone.localtime().replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=days_ago)


def logged(query: str, *, at, total: int, lexical_total: int | None, offset: int = 0, user=None) -> QueryLog:
    row = QueryLog.objects.create(
        user=user, query=query, query_normalized=query.lower(), filters={}, mode="hybrid", channel="web", limit=10,
        offset=offset, results=[], result_count=min(total, 10), total=total, lexical_total=lexical_total, latency_ms=5.0,
    )
    QueryLog.objects.filter(pk=row.pk).update(created_at=at)
    return row


def clicked(query_log: QueryLog, rank: int, *, user, document) -> None:
    Click.objects.create(user=user, document=document, query=query_log.query, query_log=query_log, rank=rank)


def thumbs(value: int, *, at, user, document) -> None:
    feedback = Feedback.objects.create(user=user, document=document, query="vpn", value=value)
    Feedback.objects.filter(pk=feedback.pk).update(created_at=at)


@pytest.fixture
def history(kb, users):
    erin, document = users["erin"], kb["public/vpn.en.md"]
    first = logged("vpn", at=noon(3), total=5, lexical_total=3, user=erin)
    clicked(first, 1, user=erin, document=document)
    clicked(first, 3, user=erin, document=kb["public/database.zh.md"])
    clicked(logged("vpn gateway", at=noon(3), total=5, lexical_total=0, user=erin), 2, user=erin, document=document)
    logged("zzqx", at=noon(3), total=0, lexical_total=0, user=erin)
    deep = logged("handbook", at=noon(3), total=30, lexical_total=30, user=erin)
    deep.limit = 20
    deep.save(update_fields=["limit"])
    clicked(deep, 12, user=erin, document=document)
    clicked(logged("vpn", at=noon(3), total=30, lexical_total=30, offset=10, user=erin), 11, user=erin, document=document)
    logged("vpn", at=noon(1), total=4, lexical_total=4, user=erin)
    for value in (1, 1, -1):
        thumbs(value, at=noon(1), user=erin, document=document)
    thumbs(-1, at=noon(3), user=erin, document=document)
    logged("long ago", at=noon(60), total=1, lexical_total=1, user=erin)


def test_daily_figures_are_worked_out_in_the_database(history):
    days = {b.start: b for b in relevance_over_time(since=noon(7), bucket="day")}
    assert len(days) == 8 and all(b.searches == 0 for start, b in days.items() if start not in {noon(3).date(), noon(1).date()})
    three = days[noon(3).date()]
    # Four first-page searches (the second page is not a search); two found nothing by keyword.
    assert (three.searches, three.empty, three.no_results) == (4, 2, 1)
    assert (three.clicked, three.clicked_at_1, three.clicked_in_10) == (3, 1, 2)
    assert three.zero_result_rate == 0.5 and three.click_through_at_1 == 0.25 and three.click_through_at_10 == 0.5
    assert three.mean_reciprocal_rank == pytest.approx((1 + 1 / 2 + 1 / 12) / 3)
    assert (three.thumbs_up, three.thumbs_down) == (0, 1)
    one = days[noon(1).date()]
    assert (one.searches, one.clicked, one.thumbs_up, one.thumbs_down) == (1, 0, 2, 1)
    assert one.mean_reciprocal_rank is None and one.click_through_at_1 == 0.0


def test_weekly_buckets_start_on_monday_and_add_up(history):
    weeks = relevance_over_time(since=noon(7), bucket="week")
    assert all(b.start.weekday() == 0 for b in weeks) and 1 <= len(weeks) <= 2
    assert sum(b.searches for b in weeks) == 5 and sum(b.thumbs_down for b in weeks) == 2
    with pytest.raises(ValueError):
        relevance_over_time(since=noon(7), bucket="hour")


def test_the_page_draws_accessible_charts_and_a_table(history):
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    page = client.get(DASHBOARD, {"days": "7", "bucket": "day"}).content.decode()
    charts = page[page.index('<div class="kb-charts">'):page.index('<div class="results">')]
    assert charts.count('<svg xmlns="http://www.w3.org/2000/svg" class="kb-chart"') == 5 and "<script" not in charts
    for title in ("Searches per day", "Zero-result rate", "Click-through", "Mean reciprocal rank of the best click",
                  "Thumbs per day"):
        assert re.search(rf'<title id="chart-\d+-title">{title}</title>', page), title
    assert charts.count('role="img"') == 5 and charts.count("<desc") == 5
    assert "http" not in charts.replace('xmlns="http://www.w3.org/2000/svg"', "")  # nothing fetched
    row = re.search(rf"<th scope=\"row\">{noon(3).date():%Y-%m-%d}</th>(.*?)</tr>", page, re.S).group(1)
    assert re.findall(r"<td>([^<]*)</td>", row) == ["4", "50.0%", "1", "25.0%", "50.0%", "3", "0.528", "0", "1"]
    assert "vpn gateway" not in page and "erin" not in page  # no queries, no users: figures only
    weekly = client.get(DASHBOARD, {"days": "365"}).content.decode()
    assert "Searches per week" in weekly and "1 thumbs up" not in weekly and "2 thumbs up" in weekly
    assert client.get(DASHBOARD, {"days": "banana", "bucket": "year"}).status_code == 200  # defaults


def test_only_staff_who_may_read_the_query_log_see_it(users):
    staff = User.objects.create_user("staff", password="pw", is_staff=True)
    client = Client()
    client.force_login(staff)
    assert client.get(DASHBOARD).status_code == 403
    staff.user_permissions.add(Permission.objects.get(codename="view_querylog"))
    assert client.get(DASHBOARD).status_code == 200
    outsider = Client()
    outsider.force_login(users["erin"])  # not staff
    assert outsider.get(DASHBOARD).status_code == 302
    assert Client().get(DASHBOARD).status_code == 302
