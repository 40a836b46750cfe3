"""Sessions: the last click of a session weighs more; a click left within seconds weighs less."""
from datetime import timedelta

import pytest

from kbsearch.relevance.training_data.params import TrainingDataParams
from tests.relevance.conftest import click, rows_for, search


def test_the_last_click_of_a_session_weighs_more(kb, users, doc, build, base_time):
    bob = users["bob"]
    log = search(bob, "wifi at the office", base_time)
    click(bob, doc("wifi"), log, 2, base_time + timedelta(seconds=20))
    # A reformulated search a minute later, same session: its click ends the session.
    later = search(bob, "office vpn", base_time + timedelta(minutes=1))
    click(bob, doc("vpn"), later, 2, base_time + timedelta(minutes=2))
    # Forty minutes on: a new session, whose only click is its last.
    again = search(bob, "printer", base_time + timedelta(minutes=42))
    click(bob, doc("printer"), again, 2, base_time + timedelta(minutes=43))
    _, rows = build()
    boost = TrainingDataParams().last_click_boost
    (first,) = rows_for(rows, "wifi at the office")
    (last,) = rows_for(rows, "office vpn")
    (other_session,) = rows_for(rows, "printer")
    assert first["weight"] == pytest.approx(2.0)  # rank 2, neither last nor left quickly
    assert last["weight"] == pytest.approx(2.0 * boost)
    assert other_session["weight"] == pytest.approx(2.0 * boost)


def test_session_length_is_configurable(kb, users, doc, build, base_time):
    bob = users["bob"]
    click(bob, doc("wifi"), search(bob, "wifi", base_time), 1, base_time + timedelta(seconds=20))
    click(bob, doc("vpn"), search(bob, "vpn", base_time + timedelta(minutes=10)), 1, base_time + timedelta(minutes=11))
    _, one_session = build()
    _, two_sessions = build(session_minutes=5)
    assert rows_for(one_session, "wifi")[0]["weight"] < rows_for(one_session, "vpn")[0]["weight"]
    assert rows_for(two_sessions, "wifi")[0]["weight"] == rows_for(two_sessions, "vpn")[0]["weight"]


def test_a_click_left_within_seconds_counts_less(kb, users, doc, build, base_time):
    bob, carol = users["bob"], users["carol"]
    # Bob opens the wifi page and searches again three seconds later: it did not answer him.
    click(bob, doc("wifi"), search(bob, "guest wifi", base_time), 1, base_time + timedelta(seconds=20))
    search(bob, "guest wifi password", base_time + timedelta(seconds=23))
    # Carol opens it and stays a minute before her next search.
    click(carol, doc("wifi"), search(carol, "wifi reception", base_time), 1, base_time + timedelta(seconds=20))
    search(carol, "something else", base_time + timedelta(seconds=80))
    _, rows = build()
    params = TrainingDataParams()
    # Both are their session's last click (boosted alike); only Bob's was left within seconds.
    assert rows_for(rows, "wifi reception")[0]["weight"] == pytest.approx(params.last_click_boost)
    assert rows_for(rows, "guest wifi")[0]["weight"] == pytest.approx(params.last_click_boost * params.short_dwell_factor)
