"""Migrating to the outbox keeps unfinished index work: documents the old markers flagged are queued."""
import hashlib

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("documents", "0001_initial")]
AFTER = [("documents", "0002_index_outbox")]


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@pytest.fixture
def back_to_latest():
    """Whatever happens, leave the schema at the latest migrations for the tests that follow."""
    yield
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_documents_half_indexed_by_the_old_code_are_queued(back_to_latest):
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    source = old.get_model("documents", "Source").objects.create(key="s", name="S", connector="filesystem")
    Document = old.get_model("documents", "Document")
    access_ok = _hash("group:hr\npublic")

    def document(name, indexed_hash, access_hash):
        made = Document.objects.create(
            source=source, external_id=name, title=name, content_hash="c1", indexed_hash=indexed_hash,
            access_hash=access_hash,
        )
        for principal in ("public", "group:hr"):
            old.get_model("documents", "DocumentAccess").objects.create(document=made, principal=principal)
        return made.pk

    done = document("done", "c1", access_ok)
    content_pending = document("content", "c0", access_ok)
    access_pending = document("access", "c1", _hash("group:hr"))

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps
    queued = {
        (row.document_id, row.source_id, row.kind)
        for row in new.get_model("documents", "PendingIndexChange").objects.all()
    }
    assert queued == {(content_pending, source.pk, "upsert"), (access_pending, source.pk, "access")}
    assert done not in {document_id for document_id, _source, _kind in queued}
