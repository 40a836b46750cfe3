"""``manage.py evaluate`` ranks without the admin's synonyms, so its figures stay comparable.

One-way "quokka -> wombat" would lift d3 ("wombat wombat wombat quokka") above d2 ("quokka
island") for the query "quokka" (checked below with the same ranking code); evaluate must still
report d3 second, as with no set at all.
"""
import json

import numpy as np
import pytest
from django.core.management import call_command

from kbsearch.index.base import IndexChunk, IndexMetadata, SearchFilters
from kbsearch.index.ranking import rank_documents
from kbsearch.search.models import SynonymSet
from kbsearch.search.synonyms import synonym_table
from kbsearch.text.analysis import chunk_terms
from tests.keyword_encoder import KeywordEncoder
from tests.knowledge_base import use_encoder

pytestmark = pytest.mark.django_db

CORPUS = [
    {"_id": "d1", "title": "", "text": "zephyr winds over the hills", "lang": "en"},
    {"_id": "d2", "title": "", "text": "quokka island", "lang": "en"},
    {"_id": "d3", "title": "", "text": "wombat wombat wombat quokka", "lang": "en"},
]


def ranked_with_synonyms(index) -> list[int]:
    """The same corpus ranked by the search code with the admin's sets applied."""
    index.ensure_index(metadata=IndexMetadata(model_id="test", model_version="v1", dimension=4, analyzer_version=2))
    index.upsert_chunks([
        IndexChunk(
            chunk_id=n, document_id=n, source_key="s", language="en", terms=chunk_terms(title="", text=row["text"]),
            vector=np.eye(4, dtype=np.float32)[n], principals=frozenset({"public"}),
        )
        for n, row in enumerate(CORPUS, start=1)
    ]).raise_for_failures()
    page = rank_documents(
        index=index, query="quokka", query_vector=None, filters=SearchFilters(principals=frozenset({"public"})),
        mode="bm25", synonyms=synonym_table(),
    )
    return [hit.document_id for hit in page.hits]


def test_evaluate_ignores_synonym_sets(tmp_path, monkeypatch, index_backend):
    use_encoder(monkeypatch, KeywordEncoder(["zephyr", "quokka", "wombat"]))
    beir = tmp_path / "sets" / "animals"
    beir.mkdir(parents=True)
    (beir / "corpus.jsonl").write_text("".join(json.dumps(row) + "\n" for row in CORPUS))
    (beir / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "quokka"}) + "\n")
    (beir / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td3\t1\n")
    SynonymSet.objects.create(kind="one_way", terms="quokka", expansions="wombat")

    assert ranked_with_synonyms(index_backend)[:2] == [3, 2]  # the set would change the ranking

    output = tmp_path / "results.json"
    call_command("evaluate", str(tmp_path / "sets"), "--mode", "bm25", "--work-dir", str(tmp_path / "work"),
                 "--output", str(output))
    metrics = json.loads(output.read_text())[0]["metrics"]
    assert metrics["mrr@10"] == pytest.approx(0.5)  # d3 second: no synonym applied
