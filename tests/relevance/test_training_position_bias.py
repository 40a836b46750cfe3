"""Position bias: a click counts the inverse of the chance its rank was looked at, clipped."""
from datetime import timedelta

import pytest

from kbsearch.relevance.training_data.params import TrainingDataParams
from kbsearch.relevance.training_data.use_pairs import click_weight
from tests.relevance.conftest import rows_for, search_and_click


def test_deeper_clicks_weigh_more_up_to_the_clip():
    params = TrainingDataParams()
    assert click_weight(1, params) == 1.0
    assert click_weight(6, params) == 6.0
    assert click_weight(1, params) < click_weight(3, params) < click_weight(6, params)
    assert click_weight(40, params) == params.propensity_clip
    assert click_weight(None, params) == 1.0
    assert click_weight(4, TrainingDataParams(propensity_exponent=0.5)) == pytest.approx(2.0)
    assert click_weight(9, TrainingDataParams(propensity_exponent=0.0)) == 1.0


def test_a_click_at_rank_six_outweighs_one_at_rank_one(kb, users, doc, build, base_time):
    search_and_click(users["bob"], "vpn client", doc("vpn"), rank=1, at=base_time)
    search_and_click(users["carol"], "office printer", doc("printer"), rank=6, at=base_time + timedelta(hours=3))
    _, rows = build()
    (top,) = rows_for(rows, "vpn client")
    (deep,) = rows_for(rows, "office printer")
    assert top["origin"] == deep["origin"] == "click"
    # Each click is its session's last, so both carry the same boost: only the rank differs.
    assert deep["weight"] == pytest.approx(6 * top["weight"])
