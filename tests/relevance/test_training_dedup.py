"""Judgements are merged by normalised query and document, across searches and users."""
from datetime import datetime, timedelta

import pytest

from tests.relevance.conftest import search_and_click


def test_same_query_and_document_make_one_row_with_the_evidence_summed(kb, users, doc, build, base_time):
    search_and_click(users["bob"], "VPN  Client", doc("vpn"), rank=1, at=base_time)
    search_and_click(users["carol"], "vpn client", doc("vpn"), rank=1, at=base_time + timedelta(hours=1))
    search_and_click(users["bob"], "ｖｐｎ client", doc("vpn"), rank=1, at=base_time + timedelta(hours=2))
    search_and_click(users["dave"], "vpn client", doc("printer"), rank=1, at=base_time + timedelta(hours=3))
    _, rows = build()
    vpn_rows = [row for row in rows if row["document_id"] == doc("vpn").pk]
    assert len(vpn_rows) == 1 and len(rows) == 2
    (single,) = [row for row in rows if row["document_id"] == doc("printer").pk]
    assert vpn_rows[0]["weight"] == pytest.approx(3 * single["weight"])
    assert vpn_rows[0]["query"] == "ｖｐｎ client"  # the text as last searched
    assert datetime.fromisoformat(vpn_rows[0]["query_time"]) == base_time + timedelta(hours=2)  # the latest search


def test_weights_are_capped(kb, users, doc, build, base_time):
    for hour in range(4):
        search_and_click(users["bob"], "printer", doc("printer"), rank=9, at=base_time + timedelta(hours=hour))
    _, rows = build(weight_cap=12.0)
    assert [row["weight"] for row in rows] == [12.0]
