"""A clicked document's positive is its chunk that best matches the query under the serving model;
without a model, its first chunk."""
from datetime import timedelta

from kbsearch.relevance.training_data.passages import PassageStore, QueryVectors, best_passages
from tests.relevance.conftest import rows_for, search_and_click


def test_the_chunk_nearest_the_query_is_the_positive(kb, users, doc, build, base_time):
    search_and_click(users["bob"], "connect to the gateway", doc("vpn"), rank=1, at=base_time)
    search_and_click(users["carol"], "install the client", doc("vpn"), rank=1, at=base_time + timedelta(hours=1))
    _, rows = build()
    chunks = {chunk.ordinal: chunk for chunk in doc("vpn").chunks.all()}
    assert rows_for(rows, "connect to the gateway")[0]["chunk_id"] == chunks[1].pk
    assert rows_for(rows, "connect to the gateway")[0]["positive"] == chunks[1].text
    assert rows_for(rows, "install the client")[0]["chunk_id"] == chunks[0].pk


def test_without_a_model_the_first_chunk_is_the_positive(kb, doc):
    best = best_passages(wanted=[("connect to the gateway", doc("vpn").pk)], store=PassageStore(),
                         vectors=QueryVectors(None))
    assert best[("connect to the gateway", doc("vpn").pk)].ordinal == 0
