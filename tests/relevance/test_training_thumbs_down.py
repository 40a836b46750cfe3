"""Explicit feedback: thumbs-up counts as positive evidence, thumbs-down gives the query a negative,
and a user's thumbs-down takes back their own click."""
from datetime import timedelta

from kbsearch.analytics.models import Feedback
from tests.relevance.conftest import click, rows_for, search, search_and_click, vote


def _passages_of(document):
    return {chunk.text for chunk in document.chunks.all()}


def test_thumbs_down_becomes_a_negative_of_the_query(kb, users, doc, build, base_time):
    bob, carol = users["bob"], users["carol"]
    search_and_click(bob, "vpn gateway", doc("vpn"), rank=1, at=base_time)
    log = search(carol, "VPN  gateway", base_time + timedelta(hours=1))
    vote(carol, doc("mail"), log, Feedback.Value.DOWN, base_time + timedelta(hours=1, seconds=30))
    snapshot, rows = build(negatives_per_pair=2)
    (row,) = [row for row in rows if row["document_id"] == doc("vpn").pk]
    assert row["negatives"][0] in _passages_of(doc("mail"))  # explicit negatives come first
    assert not any(row["document_id"] == doc("mail").pk for row in rows)
    assert snapshot.summary["negatives"]["thumbs-down"] == 1


def test_thumbs_up_is_positive_evidence_worth_more_than_a_click(kb, users, doc, build, base_time):
    bob = users["bob"]
    log = search(bob, "printer", base_time)
    vote(bob, doc("printer"), log, Feedback.Value.UP, base_time + timedelta(seconds=30))
    search_and_click(users["carol"], "wifi", doc("wifi"), rank=1, at=base_time + timedelta(hours=2))
    _, rows = build()
    (up,) = rows_for(rows, "printer")
    (clicked,) = rows_for(rows, "wifi")
    assert up["origin"] == "feedback" and clicked["origin"] == "click"
    assert up["weight"] > clicked["weight"]


def test_a_users_thumbs_down_retracts_their_click(kb, users, doc, build, base_time):
    bob = users["bob"]
    log = search(bob, "vpn profile", base_time)
    click(bob, doc("mail"), log, 1, base_time + timedelta(seconds=20))
    vote(bob, doc("mail"), log, Feedback.Value.DOWN, base_time + timedelta(seconds=60))
    click(bob, doc("vpn"), log, 2, base_time + timedelta(seconds=90))
    snapshot, rows = build(negatives_per_pair=3)
    assert [row["document_id"] for row in rows] == [doc("vpn").pk]
    assert rows[0]["negatives"][0] in _passages_of(doc("mail"))
    assert snapshot.summary["dropped"]["click retracted by the same user's thumbs-down"] == 1


def test_thumbs_down_outweighed_by_others_clicks_is_not_a_negative(kb, users, doc, build, base_time):
    for hour, name in enumerate(["bob", "carol", "dave"]):
        search_and_click(users[name], "mail phone", doc("mail"), rank=3, at=base_time + timedelta(hours=hour))
    log = search(users["alice"], "mail phone", base_time + timedelta(hours=5))
    vote(users["alice"], doc("mail"), log, Feedback.Value.DOWN, base_time + timedelta(hours=5, seconds=10))
    search_and_click(users["alice"], "mail phone", doc("vpn"), rank=2, at=base_time + timedelta(hours=5, minutes=1))
    _, rows = build(negatives_per_pair=5)
    mail_rows = [row for row in rows if row["document_id"] == doc("mail").pk]
    assert len(mail_rows) == 1 and mail_rows[0]["weight"] > 0
    (vpn_row,) = [row for row in rows if row["document_id"] == doc("vpn").pk]
    assert not set(vpn_row["negatives"]) & _passages_of(doc("mail"))  # clicked by others for this query
