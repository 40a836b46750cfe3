"""``manage.py reindex`` end to end on a synced knowledge base: a new generation, switched while a
second backend (a running web process) keeps the index open, with the database's exact content.
"""
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from connectors.services import source_create, source_sync
from kbsearch.documents.indexing import index_chunks_for, index_rebuild
from kbsearch.documents.models import Chunk, Document, DocumentAccess
from kbsearch.index.base import SearchFilters, SearchQuery
from kbsearch.index.embedded import EmbeddedIndexBackend
from kbsearch.text.analysis import query_terms
from tests.documents.index_state import database_state

pytestmark = pytest.mark.django_db

FILES = {
    "_access.yaml": "principals: [public]\n",
    "vpn.en.md": "# VPN setup\n\nConnect to the VPN from home. Pick the nearest gateway.\n",
    "vpn.zh.md": "# VPN 设置\n\n在家连接 VPN 时请检查数据库时间。\n",
    "cafeteria.ja.md": "# 食堂\n\n食堂は8時に開きます。VPN は不要です。\n",
    "hr/_access.yaml": "principals: [group:hr]\n",
    "hr/salary.en.md": "# Salary bands\n\nBand L3 pays a VPN allowance.\n",
    "drafts/_access.yaml": "principals: []\n",
    "drafts/osaka.en.md": "# Osaka office\n\nA secret draft: the VPN for Osaka opens in 2027.\n",
}
QUERIES = ["vpn gateway", "数据库", "食堂", "salary", "osaka"]
PRINCIPAL_SETS = [frozenset({"public"}), frozenset({"public", "group:hr"}), frozenset({"user:nobody"})]


@pytest.fixture
def synced(tmp_path, tiny_encoder, index_backend):
    root = tmp_path / "share"
    for relative, text in FILES.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text, encoding="utf-8")
    source = source_create(key="share", name="Share", connector="filesystem", config={"root": str(root)})
    run = source_sync(source=source, encoder=tiny_encoder)
    assert not run.errors, run.errors
    return {document.external_id: document for document in Document.objects.all()}


def all_hits(index, encoder):
    """Every query for every principal set: (chunk ids, scores) best first."""
    results = {}
    for query in QUERIES:
        vector = encoder.encode_queries([query])[0]
        for principals in PRINCIPAL_SETS:
            hits = index.search(SearchQuery(
                terms=query_terms(query), vector=vector, filters=SearchFilters(principals=principals), alpha=0.5,
                limit=20,
            ))
            results[query, principals] = ([hit.chunk_id for hit in hits], [hit.score for hit in hits])
    return results


def test_reindex_switches_a_running_process_with_identical_results(synced, index_backend, tiny_encoder, settings):
    web = EmbeddedIndexBackend(path=settings.KBSEARCH_INDEX["OPTIONS"]["path"])  # opened before, kept open
    before = all_hits(web, tiny_encoder)
    # The permissions are real in this corpus: the comparison covers what each set may and may not see.
    salary_chunks = set(synced["hr/salary.en.md"].chunks.values_list("pk", flat=True))
    draft_chunks = set(synced["drafts/osaka.en.md"].chunks.values_list("pk", flat=True))
    assert salary_chunks & set(before["salary", PRINCIPAL_SETS[1]][0])
    assert not salary_chunks & set(before["salary", PRINCIPAL_SETS[0]][0])
    assert draft_chunks and not draft_chunks & {chunk for ids, _ in before.values() for chunk in ids}
    assert before["vpn gateway", PRINCIPAL_SETS[2]] == ([], [])
    documents = sorted(document.pk for document in synced.values())

    out = StringIO()
    call_command("reindex", stdout=out)

    chunk_total = Chunk.objects.count()
    assert out.getvalue().strip() == f"reindexed {chunk_total} chunks into generation 2"
    after = all_hits(web, tiny_encoder)
    assert web.current_generation() == 2
    assert set(after) == set(before)
    for key, (chunk_ids, scores) in before.items():
        assert after[key][0] == chunk_ids, key
        assert after[key][1] == pytest.approx(scores, rel=1e-5), key
    assert web.indexed_documents(documents) == database_state()
    assert index_backend.current_generation() == 2
    assert web.chunk_count() == chunk_total
    web.close()


class SyncDuringRebuild:
    """The tiny encoder; the first time the rebuild embeds, a sync changes three documents: in the
    database first, then in the live index through another backend (the worker process)."""

    def __init__(self, encoder, sync) -> None:
        self.inner, self.sync, self.synced = encoder, sync, False
        self.dimension = encoder.dimension
        self.index_metadata = encoder.index_metadata

    def encode_passages(self, texts):
        if not self.synced:
            self.synced = True
            self.sync()
        return self.inner.encode_passages(texts)


def test_a_sync_during_reindex_is_in_the_new_generation(synced, index_backend, tiny_encoder, settings):
    path = settings.KBSEARCH_INDEX["OPTIONS"]["path"]
    worker = EmbeddedIndexBackend(path=path)
    worker.ensure_index(metadata=tiny_encoder.index_metadata)  # a sync worker embeds with this model
    widened, deleted, edited = synced["hr/salary.en.md"], synced["vpn.en.md"], synced["cafeteria.ja.md"]
    deleted_id = deleted.pk

    def sync():
        DocumentAccess.objects.create(document=widened, principal="user:erin")
        worker.update_access(widened.pk, frozenset({"group:hr", "user:erin"}))
        deleted.delete()
        worker.delete_documents([deleted_id])
        chunk = edited.chunks.order_by("ordinal").first()
        chunk.text = "食堂は9時に開きます。弁当は売店で。"
        chunk.save()
        vectors = tiny_encoder.encode_passages([chunk.text])
        worker.upsert_chunks(index_chunks_for(document=edited, chunks=[chunk], vectors=vectors,
                                              principals=frozenset({"public"})))

    generation = index_rebuild(encoder=SyncDuringRebuild(tiny_encoder, sync), batch_size=2)

    assert generation.number == 2
    reader = EmbeddedIndexBackend(path=path)
    assert reader.current_generation() == 2
    expected = database_state()
    assert deleted_id not in expected and expected[widened.pk].principals == {"group:hr", "user:erin"}
    assert reader.indexed_documents(sorted(expected) + [deleted_id]) == expected
    erin = SearchFilters(principals=frozenset({"user:erin"}))
    assert {hit.document_id for hit in reader.bm25_search(terms=query_terms("salary"), filters=erin, limit=5)} == {
        widened.pk
    }
    public = SearchFilters(principals=frozenset({"public"}))
    assert {hit.document_id for hit in reader.bm25_search(terms=query_terms("弁当"), filters=public, limit=5)} == {
        edited.pk
    }
    reader.close()
    worker.close()


def test_reindex_leaves_the_index_files_beside_the_configured_path(synced, settings):
    path = Path(settings.KBSEARCH_INDEX["OPTIONS"]["path"])
    call_command("reindex", stdout=StringIO())
    call_command("reindex", stdout=StringIO())
    names = sorted(entry.name for entry in path.parent.iterdir() if not entry.name.endswith(("-wal", "-shm")))
    # Generation 3 serves, generation 2 is kept for one rollback, the original single file is gone,
    # and so are its mapped segments; each kept generation has its own.
    assert names == [
        f"{path.name}.build-lock", f"{path.name}.current", f"{path.name}.gen2", f"{path.name}.gen2.segments",
        f"{path.name}.gen3", f"{path.name}.gen3.segments",
    ]
