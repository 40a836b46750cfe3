"""Hard negatives: mined by BM25 over the pool and by the serving model's vectors, never a passage
of the positive's document, of a document clicked for the same query, or one the row's users
cannot see."""
from datetime import timedelta

from kbsearch.documents.models import Chunk
from kbsearch.relevance.training_data.negatives import MiningRequest, NegativeMiner
from kbsearch.relevance.training_data.params import TrainingDataParams
from kbsearch.relevance.training_data.passages import PassageStore, QueryVectors
from tests.relevance.conftest import rows_for, search_and_click


def _documents_of(texts, kb):
    by_text = {chunk.text: chunk.document_id for chunk in Chunk.objects.all()}
    return [by_text[text] for text in texts]


def test_negatives_are_never_the_positives_document_nor_clicked_for_the_query(kb, users, doc, build, base_time):
    search_and_click(users["bob"], "vpn", doc("vpn"), rank=1, at=base_time)
    search_and_click(users["carol"], "vpn", doc("wifi"), rank=2, at=base_time + timedelta(hours=1))
    snapshot, rows = build(negatives_per_pair=10, mining_depth=50)
    by_document = {row["document_id"]: row for row in rows_for(rows, "vpn")}
    assert set(by_document) == {doc("vpn").pk, doc("wifi").pk}
    for row in by_document.values():
        negatives = _documents_of(row["negatives"], kb)
        assert negatives, row
        assert doc("vpn").pk not in negatives and doc("wifi").pk not in negatives
        assert doc("salary").pk not in negatives  # HR only: neither Bob nor Carol may see it
        assert doc("mail").pk in negatives  # says "VPN" too: the hard negative
    refused = snapshot.summary["negatives"]
    assert refused["refused: positive's or clicked document"] > 0
    assert refused["refused: not visible to the row's users"] > 0
    assert refused["vector"] > 0


def test_a_user_who_may_see_a_document_can_get_it_as_a_negative(kb, users, doc, build, base_time):
    search_and_click(users["alice"], "vpn gateway", doc("vpn"), rank=1, at=base_time)
    _, rows = build(negatives_per_pair=10, mining_depth=50)
    (row,) = rows
    assert doc("salary").pk in _documents_of(row["negatives"], kb)


def test_negatives_per_pair_is_respected(kb, users, doc, build, base_time):
    search_and_click(users["bob"], "vpn", doc("vpn"), rank=1, at=base_time)
    _, none = build(negatives_per_pair=0)
    _, one = build(negatives_per_pair=1)
    assert none[0]["negatives"] == [] and len(one[0]["negatives"]) == 1


def test_corpus_rows_take_negatives_from_their_documents_audience(kb, doc, build):
    _, rows = build(corpus_per_document=5, negatives_per_pair=10, mining_depth=50)
    public = [row for row in rows if row["document_id"] != doc("salary").pk]
    assert public and all(row["origin"] == "corpus" for row in rows)
    for row in public:
        negatives = _documents_of(row["negatives"], kb)
        assert doc("salary").pk not in negatives and row["document_id"] not in negatives


def test_bm25_over_the_pool_finds_lexical_negatives_alone(kb, doc):
    """Without a model (no vector leg), rank-bm25 over the pool still mines: passages sharing the
    query's words, best first, with the same refusals."""
    store = PassageStore()
    pool = list(store.iter_all())
    params = TrainingDataParams(negatives_per_pair=10)
    miner = NegativeMiner(store=store, pool=pool, endorsed={"vpn gateway": {doc("wifi").pk}},
                          vectors=QueryVectors(None), index=None, params=params, allowed_source_keys=None)
    positive = next(passage for passage in pool if passage.document_id == doc("vpn").pk)
    (negatives,) = miner.mine([MiningRequest("vpn gateway", "vpn gateway", positive, frozenset({"group:hr", "public"}))])
    documents = [passage.document_id for passage in negatives]
    # Salary (both words) before mail (one word); wifi was clicked for the query; printer shares no word.
    assert documents == [doc("salary").pk, doc("mail").pk]
    assert miner.counts["bm25"] == 2 and "vector" not in miner.counts
