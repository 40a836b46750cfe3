"""A restart: an index written by one process is searched by a new Python process, with the same hits.

The second process shares nothing with the first but the files on disk (no memory copy, no open
connection), so this checks what was committed, in both on-disk layouts: the single file of
generation 1 and a rebuilt generation behind the pointer.
"""
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from kbsearch.index.embedded import EmbeddedIndexBackend
from kbsearch.text.analysis import query_terms
from tests.index.entries import DIM, chunk, meta, unit

REPO = Path(__file__).resolve().parents[2]
PRINCIPALS = ["public", "group:hr"]
QUERIES = {"en": "vpn setup", "zh": "数据库", "ja": "テスト"}

# Run in the new process: open the index at argv[1], run every query, print the hits as JSON.
SEARCH_SCRIPT = """
import json, sys
import numpy as np
from kbsearch.index.base import SearchFilters
from kbsearch.index.embedded import EmbeddedIndexBackend
from kbsearch.text.analysis import query_terms

path, queries, vector, principals = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4:]
index = EmbeddedIndexBackend(path=path)
filters = SearchFilters(principals=frozenset(principals))
print(json.dumps({
    "generation": index.current_generation(),
    "bm25": {key: [hit.chunk_id for hit in index.bm25_search(terms=query_terms(text), filters=filters, limit=10)]
             for key, text in queries.items()},
    "vector": [hit.chunk_id for hit in index.vector_search(vector=np.array(vector, dtype=np.float32),
                                                           filters=filters, limit=10)],
}))
"""


def corpus():
    return [
        chunk(1, 1, "VPN setup from home", {"public"}),
        chunk(2, 1, "VPN gateway list", {"public"}),
        chunk(3, 2, "公司的数据库备份", {"public"}, language="zh"),
        chunk(4, 3, "数据库 salary bands", {"group:hr"}, language="zh"),
        chunk(5, 4, "新しいテストケース", {"public"}, language="ja"),
        chunk(6, 5, "secret vpn draft", set()),
        chunk(7, 6, "vpn setup for engineers", {"group:engineering"}),
    ]


def search_here(index, query_vector):
    from kbsearch.index.base import SearchFilters

    filters = SearchFilters(principals=frozenset(PRINCIPALS))
    return {
        "generation": index.current_generation(),
        "bm25": {key: [hit.chunk_id for hit in index.bm25_search(terms=query_terms(text), filters=filters, limit=10)]
                 for key, text in QUERIES.items()},
        "vector": [hit.chunk_id for hit in index.vector_search(vector=query_vector, filters=filters, limit=10)],
    }


def search_in_new_process(path, query_vector):
    completed = subprocess.run(
        [sys.executable, "-c", SEARCH_SCRIPT, path, json.dumps(QUERIES), json.dumps(query_vector.tolist()),
         *PRINCIPALS],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


@pytest.mark.parametrize("rebuilt", [False, True], ids=["first generation", "rebuilt generation"])
def test_a_new_process_gets_the_same_hits(tmp_path, rebuilt):
    path = str(tmp_path / "index.sqlite3")
    index = EmbeddedIndexBackend(path=path)
    index.ensure_index(metadata=meta(DIM))
    index.upsert_chunks(corpus())
    index.update_access(3, frozenset({"user:alice"}))  # no longer group:hr
    index.delete_documents([4])
    if rebuilt:
        final = [replace(entry, principals=frozenset({"user:alice"})) if entry.document_id == 3 else entry
                 for entry in corpus() if entry.document_id != 4]
        index.rebuild(metadata=meta(DIM), batches=[final], chunks_for_documents=lambda ids: [])
    query_vector = unit(1)
    here = search_here(index, query_vector)
    index.close()

    assert here == {
        "generation": 2 if rebuilt else 1,
        "bm25": {"en": [1, 2], "zh": [3], "ja": []},
        "vector": here["vector"],
    }
    assert here["vector"][0] == 1 and sorted(here["vector"]) == [1, 2, 3]
    assert search_in_new_process(path, query_vector) == here
