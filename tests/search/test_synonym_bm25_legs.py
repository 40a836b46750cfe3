"""Synonym expansion as each backend's BM25 leg receives it: weights in the embedded index, the
query string sent to Weaviate, and the rules matched on analysed terms (CJK bigrams included)."""
import numpy as np
import pytest

from kbsearch.index.base import IndexChunk, IndexMetadata, SearchFilters, SearchQuery
from kbsearch.index.embedded import EmbeddedIndexBackend
from kbsearch.index.ranking import rank_documents
from kbsearch.index.weaviate import WeaviateIndexBackend
from kbsearch.index.weaviate.backend import bm25_query_text
from kbsearch.text.analysis import chunk_terms, query_terms
from kbsearch.text.synonyms import SynonymSetSpec, SynonymTable, expansion_weights
from tests.index.weaviate.fake_client import FakeWeaviate

PUBLIC = SearchFilters(principals=frozenset({"public"}))
DIM = 4
METADATA = IndexMetadata(model_id="test", model_version="v1", dimension=DIM, analyzer_version=2)
PRD = SynonymSetSpec(kind="equivalent", terms=("PRD", "product requirements document", "产品需求文档"))


def chunk(chunk_id: int, text: str, language: str = "en", principals=frozenset({"public"})) -> IndexChunk:
    vector = np.zeros(DIM, dtype=np.float32)
    vector[chunk_id % DIM] = 1.0
    return IndexChunk(
        chunk_id=chunk_id, document_id=chunk_id, source_key="share", language=language,
        terms=chunk_terms(title="", text=text), vector=vector, principals=principals,
    )


@pytest.fixture
def embedded(tmp_path):
    index = EmbeddedIndexBackend(path=str(tmp_path / "index.sqlite3"))
    index.ensure_index(metadata=METADATA)
    index.upsert_chunks([
        chunk(1, "The PRD names an owner."),
        chunk(2, "The product requirements document names an owner."),
        chunk(3, "这个产品需求文档的模板很长。", language="zh"),
        chunk(4, "Lunch is soup."),
        chunk(5, "秘密的产品需求文档。", language="zh", principals=frozenset({"group:hr"})),
    ]).raise_for_failures()
    yield index
    index.close()


def test_rules_match_analysed_runs_and_weigh_alternatives_below_the_query():
    table = SynonymTable([PRD], weight=0.5)
    terms = query_terms("PRD 模板")
    expansions = table.expand(terms, frozenset({"en", "zh", "ja"}))
    assert {e.alternative for e in expansions} == {("product", "requirement", "document"), ("产品", "品需", "需求", "求文", "文档")}
    weights = dict(expansion_weights(terms, expansions, 0.5))
    assert weights["product"] == pytest.approx(0.5 / 3) and weights["文档"] == pytest.approx(0.1)
    # Inside a longer Chinese query the phrase is still its run of bigrams; "prd" weighs at most 0.5.
    chinese = query_terms("这个产品需求文档的模板")
    assert dict(expansion_weights(chinese, table.expand(chinese, frozenset({"zh", "ja"})), 0.5)) == {
        "prd": 0.5, "product": 0.5, "requirement": 0.5, "document": 0.5,
    }
    assert table.expand(query_terms("product requirements"), frozenset({"en"})) == []  # the whole phrase only


def test_embedded_scores_an_expansion_term_at_its_weight(embedded):
    plain = {hit.chunk_id: hit.score for hit in embedded.bm25_search(terms=["document"], filters=PUBLIC, limit=10)}
    weighted = embedded.bm25_search(terms=["prd"], filters=PUBLIC, limit=10, expansions=[("document", 0.25)])
    assert [hit.chunk_id for hit in weighted] == [1, 2]
    assert weighted[1].score == pytest.approx(0.25 * plain[2], rel=1e-5)
    # A query term listed again as an expansion keeps its full weight.
    again = embedded.bm25_search(terms=["prd"], filters=PUBLIC, limit=10, expansions=[("prd", 0.1)])
    assert again[0].score == pytest.approx(embedded.bm25_search(terms=["prd"], filters=PUBLIC, limit=10)[0].score)


def test_embedded_ranking_with_synonyms_finds_both_languages_and_respects_access(embedded):
    table = SynonymTable([PRD], weight=0.5)
    for mode in ("bm25", "hybrid"):
        page = rank_documents(
            index=embedded, query="PRD", query_vector=np.eye(DIM, dtype=np.float32)[0], filters=PUBLIC, mode=mode,
            synonyms=table,
        )
        ids = [hit.document_id for hit in page.pool if hit.bm25_score is not None or mode == "bm25"]
        assert ids[0] == 1 and set(ids) == {1, 2, 3}, mode  # never 5 (HR only)
    without = rank_documents(index=embedded, query="PRD", query_vector=None, filters=PUBLIC, mode="bm25")
    assert [hit.document_id for hit in without.pool] == [1]


def test_weaviate_bm25_query_repeats_terms_to_weigh_them():
    assert bm25_query_text(["prd", "模板"]) == "prd 模板"  # no expansion: the query as before
    text = bm25_query_text(["prd"], [("product", 0.5 / 3), ("文档", 0.1), ("skip", 0.0)])
    counts = {term: text.split().count(term) for term in set(text.split())}
    assert counts == {"prd": 10, "product": 2, "文档": 1}
    assert bm25_query_text(["prd"], [("document", 0.5)]) == "prd prd document"  # divided by the common divisor


def test_weaviate_request_built_from_a_query_with_synonyms():
    server = FakeWeaviate()
    backend = WeaviateIndexBackend(collection="KbSyn", client=server, sleep=lambda seconds: None)
    backend.ensure_index(metadata=METADATA)
    terms = query_terms("PRD")
    table = SynonymTable([PRD], weight=0.5)
    expansions = expansion_weights(terms, table.expand(terms, frozenset({"en"})), table.weight)
    backend.search(SearchQuery(filters=PUBLIC, limit=7, terms=terms, alpha=0.0, expansions=expansions))
    kind, collection, arguments = server.search_calls[-1]
    assert (kind, collection, arguments["limit"]) == ("bm25", "KbSyn_g1", 7)
    words = arguments["query"].split()
    assert words.count("prd") == 10 and words.count("product") == 2 and words.count("求文") == 1
    assert arguments["filters"].target == "principals"  # the access filter travels with the expansion
    # The vector leg of a hybrid query gets the vector only: expansions are the BM25 leg's.
    server.search_calls.clear()
    backend.search(SearchQuery(filters=PUBLIC, limit=3, terms=terms, vector=np.ones(DIM, dtype=np.float32),
                               expansions=expansions))
    assert {kind for kind, _, _ in server.search_calls} == {"bm25", "near_vector"}
    assert all("query" not in arguments for kind, _, arguments in server.search_calls if kind == "near_vector")
