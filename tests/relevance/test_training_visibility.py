"""A click or vote counts only for a document its user may see now."""
from datetime import timedelta

from django.contrib.auth.models import Group
from django.utils import timezone

from kbsearch.analytics.models import Click, Feedback, QueryLog
from tests.relevance.conftest import search, search_and_click

NOT_VISIBLE = "document not visible to the user now"


def test_a_click_on_a_document_the_user_cannot_see_is_not_used(kb, users, doc, build, base_time):
    bob = users["bob"]
    # Written straight to the tables (the click service would refuse it): Bob never could see it.
    log = search(bob, "salary bands", base_time)
    Click.objects.create(user=bob, document=doc("salary"), query="salary bands", query_log=log, rank=1)
    Feedback.objects.create(user=bob, document=doc("salary"), query="salary bands", query_log=log, rank=1, value=1)
    search_and_click(bob, "salary vpn", doc("vpn"), rank=1, at=base_time + timedelta(hours=1))
    snapshot, rows = build(negatives_per_pair=10, mining_depth=50)
    assert [row["document_id"] for row in rows] == [doc("vpn").pk]
    assert snapshot.summary["dropped"][NOT_VISIBLE] == 2
    salary_texts = {chunk.text for chunk in doc("salary").chunks.all()}
    assert not any(set(row["negatives"]) & salary_texts for row in rows)


def test_access_lost_since_the_click_drops_it(kb, users, doc, build, base_time):
    alice = users["alice"]
    search_and_click(alice, "salary bands", doc("salary"), rank=2, at=base_time)
    _, before = build()
    assert [row["document_id"] for row in before] == [doc("salary").pk]
    alice.groups.remove(Group.objects.get(name="hr"))
    snapshot, after = build()
    assert after == [] and snapshot.summary["dropped"][NOT_VISIBLE] == 1


def test_an_inactive_users_judgements_are_not_used(kb, users, doc, build, base_time):
    carol = users["carol"]
    search_and_click(carol, "printer", doc("printer"), rank=1, at=base_time)
    carol.is_active = False
    carol.save()
    _, rows = build()
    assert rows == []


def test_the_window_bounds_the_judgements(kb, users, doc, build, base_time):
    search_and_click(users["bob"], "printer", doc("printer"), rank=1, at=base_time)
    search_and_click(users["bob"], "wifi", doc("wifi"), rank=1, at=base_time + timedelta(days=1))
    _, rows = build(since=base_time + timedelta(hours=12))
    assert [row["query"] for row in rows] == ["wifi"]
    _, rows = build(until=base_time + timedelta(hours=12))
    assert [row["query"] for row in rows] == ["printer"]
    assert QueryLog.objects.filter(created_at__lte=timezone.now()).count() == 2
