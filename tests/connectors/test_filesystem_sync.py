"""File-share sync end to end: database, tiny model, embedded index, permissions from _access.yaml."""
import os
import time
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User

from connectors.base import ConnectorConfigError, ConnectorError
from connectors.models import SyncRun
from connectors.services import source_create, source_sync
from kbsearch.documents.models import Chunk, Document, PendingIndexChange, Source
from kbsearch.index.base import IndexChunk, SearchFilters
from kbsearch.search.services import search_run
from kbsearch.text.analysis import query_terms
from tests.counting_encoder import CountingEncoder

pytestmark = pytest.mark.django_db


def write(path: Path, text: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")


def touch_later(path: Path) -> None:
    stamp = time.time() + 2
    os.utime(path, (stamp, stamp))


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "share"
    write(root / "_access.yaml", "principals: [public]\n")
    write(root / "welcome.md", "# Welcome\n\nThe cafeteria opens at 8am. 食堂は8時に開きます。\n")
    write(root / "hr" / "_access.yaml", "principals: [group:hr]\n")
    write(root / "hr" / "salary.md", "# Salary bands\n\nBand 3 pays between 60k and 80k. 薪资等级说明。\n")
    write(root / "hr" / "managers" / "_access.yaml", "principals: [group:managers]\n")
    write(root / "hr" / "managers" / "reorg.md", "# Reorganisation\n\nThe robotics team merges in May.\n")
    write(root / "eng" / "_access.yaml", "principals: [group:engineering, user:carol]\n")
    write(root / "eng" / "deploy.txt", "Deploy runbook\n\nRun the deployment pipeline. 배포 절차를 따르세요.\n")
    write(root / "eng" / "oncall" / "_access.yaml", "principals: [user:erin]\ninherit: true\n")
    write(root / "eng" / "oncall" / "rota.md", "# Rota\n\nThe pager rotates weekly.\n")
    write(root / "drafts" / "_access.yaml", "principals: []\n")
    write(root / "drafts" / "idea.md", "# Idea\n\nA secret draft about teleportation.\n")
    return root


@pytest.fixture
def users():
    hr, managers, eng = (Group.objects.create(name=n) for n in ("hr", "managers", "engineering"))
    alice = User.objects.create_user("alice")
    alice.groups.add(hr)
    dave = User.objects.create_user("dave")
    dave.groups.add(hr, managers)
    bob = User.objects.create_user("bob")
    bob.groups.add(eng)
    carol = User.objects.create_user("Carol")
    erin = User.objects.create_user("erin")
    return {"alice": alice, "dave": dave, "bob": bob, "carol": carol, "erin": erin}


@pytest.fixture
def encoder(tiny_encoder):
    return CountingEncoder(tiny_encoder)


def sync(source, encoder, full=False):
    return source_sync(source=source, full=full, encoder=encoder)


def visible_titles(user, query, encoder, mode="bm25"):
    return {r.document.title for r in search_run(user=user, query=query, mode=mode, limit=50, encoder=encoder).results}


def test_first_sync_indexes_every_file_with_its_permissions(tree, users, encoder, index_backend):
    source = source_create(key="share", name="Share", connector="filesystem", config={"root": str(tree)})
    run = sync(source, encoder)
    assert run.status == SyncRun.Status.SUCCEEDED, run.errors
    assert run.counts["created"] == 6
    doc = Document.objects.get(external_id="hr/managers/reorg.md")
    assert set(doc.access.values_list("principal", flat=True)) == {"group:managers"}
    doc = Document.objects.get(external_id="eng/oncall/rota.md")
    assert set(doc.access.values_list("principal", flat=True)) == {"group:engineering", "user:carol", "user:erin"}
    assert set(Document.objects.get(external_id="eng/deploy.txt").access.values_list("principal", flat=True)) == {
        "group:engineering", "user:carol"}
    assert not Document.objects.get(external_id="drafts/idea.md").access.exists()

    assert visible_titles(users["erin"], "cafeteria salary deploy reorganisation draft pager", encoder) == {
        "Welcome", "Rota"}
    assert visible_titles(users["alice"], "salary reorganisation", encoder) == {"Salary bands"}
    assert visible_titles(users["dave"], "salary reorganisation", encoder) == {"Salary bands", "Reorganisation"}
    assert visible_titles(users["carol"], "deployment pager", encoder) == {"Deploy runbook", "Rota"}
    assert visible_titles(users["bob"], "배포", encoder) == {"Deploy runbook"}
    # Nobody sees the draft, whatever the mode.
    for user in users.values():
        for mode in ("bm25", "vector", "hybrid"):
            assert "Idea" not in visible_titles(user, "secret draft teleportation", encoder, mode)


def test_resync_of_unchanged_tree_does_no_work(tree, users, encoder, index_backend):
    source = source_create(key="share", name="Share", connector="filesystem", config={"root": str(tree)})
    sync(source, encoder)
    embedded = encoder.passages
    run = sync(source, encoder, full=True)
    assert run.counts["unchanged"] == 6 and run.counts["created"] == run.counts["updated"] == 0
    assert encoder.passages == embedded
    run = sync(source, encoder)  # incremental poll: nothing changed since
    assert run.mode == "poll" and encoder.passages == embedded


def test_changed_file_replaces_its_chunks_and_removed_file_disappears(tree, users, encoder, index_backend):
    source = source_create(key="share", name="Share", connector="filesystem", config={"root": str(tree)})
    sync(source, encoder)
    welcome = Document.objects.get(external_id="welcome.md")
    write(tree / "welcome.md", "# Welcome\n\nThe cafeteria moved to building B.\n")
    touch_later(tree / "welcome.md")
    (tree / "eng" / "deploy.txt").unlink()
    run = sync(source, encoder)
    assert run.counts["updated"] == 1 and run.counts["deleted"] == 1
    welcome.refresh_from_db()
    assert welcome.version == 2
    assert "building B" in " ".join(Chunk.objects.filter(document=welcome).values_list("text", flat=True))
    assert visible_titles(users["erin"], "building", encoder) == {"Welcome"}
    assert visible_titles(users["erin"], "8am", encoder) == set()
    assert visible_titles(users["bob"], "deployment", encoder) == set()
    assert not Document.objects.filter(external_id="eng/deploy.txt").exists()
    assert index_backend.document_ids() == set(Document.objects.values_list("pk", flat=True))


def test_access_file_change_updates_permissions_without_reembedding(tree, users, encoder, index_backend):
    source = source_create(key="share", name="Share", connector="filesystem", config={"root": str(tree)})
    sync(source, encoder)
    embedded = encoder.passages
    write(tree / "hr" / "_access.yaml", "principals: [group:hr, public]\n")
    touch_later(tree / "hr" / "_access.yaml")
    run = sync(source, encoder)
    assert run.counts["access_updated"] == 1  # salary.md; managers/ has its own list
    write(tree / "eng" / "_access.yaml", "principals: [group:engineering]\n")
    touch_later(tree / "eng" / "_access.yaml")
    run = sync(source, encoder)
    assert run.counts["access_updated"] == 2  # deploy.txt and oncall/rota.md, which inherits
    assert encoder.passages == embedded
    assert visible_titles(users["erin"], "salary reorganisation", encoder) == {"Salary bands"}
    assert visible_titles(users["carol"], "deployment pager", encoder) == set()


def test_malformed_access_file_hides_documents_below_it(tree, users, encoder, index_backend):
    source = source_create(key="share", name="Share", connector="filesystem", config={"root": str(tree)})
    sync(source, encoder)
    write(tree / "hr" / "_access.yaml", "principals: group:hr\n")  # not a list
    touch_later(tree / "hr" / "_access.yaml")
    run = sync(source, encoder)
    assert run.status == SyncRun.Status.PARTIAL
    assert any("invalid access file" in e["reason"] for e in run.errors)
    assert visible_titles(users["alice"], "salary", encoder) == set()
    assert visible_titles(users["dave"], "reorganisation", encoder) == {"Reorganisation"}  # own list, not broken
    assert Document.objects.filter(external_id="hr/salary.md").exists()  # hidden, not lost


def test_bad_files_get_clear_errors_and_the_rest_is_indexed(tree, users, encoder, index_backend, settings):
    settings.KBSEARCH_MAX_DOCUMENT_BYTES = 20 * 1024 * 1024
    write(tree / "empty.md", "")
    write(tree / "blob.txt", b"\x00\x01\x02binary\x00" * 100)
    write(tree / "latin1.txt", "Caf\xe9 menu".encode("latin-1"))
    write(tree / "odd.md", "# Odd\n\nzero\u200bwidth \U0001F600 e\u0301 \ufeff control\x07 text\n")
    with open(tree / "huge.txt", "wb") as handle:
        handle.truncate(50 * 1024 * 1024)
    source = source_create(key="share", name="Share", connector="filesystem", config={"root": str(tree)})
    run = sync(source, encoder)
    reasons = {e["external_id"]: e["reason"] for e in run.errors}
    assert run.status == SyncRun.Status.PARTIAL
    assert "no text" in reasons["empty.md"]
    assert "binary" in reasons["blob.txt"]
    assert "not valid UTF-8" in reasons["latin1.txt"]
    assert "limit" in reasons["huge.txt"]
    assert run.counts["created"] == 7  # the six good files and odd.md
    # Each of these fails the same way until the file changes, and a change is what a poll sees:
    # none holds the poll window open.
    assert run.counts["retryable_errors"] == 0
    assert Source.objects.get(pk=source.pk).last_synced_at is not None
    assert visible_titles(users["erin"], "cafeteria", encoder) == {"Welcome"}
    # Zero-width characters join (kbsearch.text.analysis); the emoji and control character separate.
    assert "Odd" in visible_titles(users["erin"], "zerowidth control", encoder)


def test_unreadable_root_fails_the_run_and_prunes_nothing(tree, users, encoder, index_backend):
    source = source_create(key="share", name="Share", connector="filesystem", config={"root": str(tree)})
    sync(source, encoder)
    tree.rename(tree.with_name("moved"))
    with pytest.raises(ConnectorError):
        sync(source, encoder, full=True)
    assert SyncRun.objects.filter(source=source).first().status == SyncRun.Status.FAILED
    assert Document.objects.filter(source=source).count() == 6


def test_source_needs_a_root():
    with pytest.raises(ConnectorConfigError):
        source_create(key="bad", name="Bad", connector="filesystem", config={})
    with pytest.raises(ConnectorConfigError, match="unknown connector"):
        source_create(key="bad", name="Bad", connector="gopher", config={})


def test_stale_index_access_can_hide_but_never_show_or_count(tree, users, encoder, index_backend):
    """The database's access rows are re-checked for results, totals and facets."""
    source = source_create(key="share", name="Share", connector="filesystem", config={"root": str(tree)})
    sync(source, encoder)
    salary = Document.objects.get(external_id="hr/salary.md")
    # Access revoked in the database, but the index update is lost (say the index was unreachable).
    salary.access.all().delete()
    response = search_run(user=users["alice"], query="salary bands", mode="bm25", limit=10, encoder=encoder)
    assert salary.pk not in {r.document.pk for r in response.results}
    assert response.total == 0
    assert response.facets == {"source": {}, "language": {}, "place": {}}


def test_an_index_entry_naming_another_document_never_shows_the_chunks_own_document(
    tree, users, encoder, index_backend
):
    """The re-check is of the document shown: the chunk's own, not the one the index names."""
    source = source_create(key="share", name="Share", connector="filesystem", config={"root": str(tree)})
    sync(source, encoder)
    salary = Document.objects.get(external_id="hr/salary.md")
    welcome = Document.objects.get(external_id="welcome.md")
    assert visible_titles(users["erin"], "salary bands", encoder) == set()
    # A corrupt or stale index entry: salary's chunk filed under the public welcome document.
    chunk = Chunk.objects.filter(document=salary).first()
    index_backend.upsert_chunks([IndexChunk(
        chunk_id=chunk.pk, document_id=welcome.pk, source_key="share", language=salary.language,
        terms=list(query_terms("salary bands")), vector=encoder.encode_passages([chunk.text])[0],
        principals=frozenset({"public"}),
    )]).raise_for_failures()
    assert chunk.pk in {hit.chunk_id for hit in index_backend.bm25_search(
        terms=query_terms("salary bands"), filters=SearchFilters(principals=frozenset({"public"})), limit=10,
    )}
    assert visible_titles(users["erin"], "salary bands", encoder) == set()


def test_failed_index_access_update_is_retried_by_the_next_sync(tree, users, encoder, index_backend, monkeypatch):
    source = source_create(key="share", name="Share", connector="filesystem", config={"root": str(tree)})
    sync(source, encoder)
    write(tree / "hr" / "_access.yaml", "principals: [group:hr, public]\n")
    touch_later(tree / "hr" / "_access.yaml")

    def unreachable(*_args, **_kwargs):
        raise ConnectionError("index unreachable")

    with monkeypatch.context() as patch:
        patch.setattr(index_backend, "update_access", unreachable)
        with pytest.raises(ConnectionError):
            sync(source, encoder)
    # The database already grants erin, but the index does not: she still sees nothing extra.
    assert visible_titles(users["erin"], "salary", encoder) == set()
    assert PendingIndexChange.objects.filter(kind="access").count() == 1
    run = sync(source, encoder)
    # The outbox record left by the failed run is replayed first; the source then matches the database.
    assert (run.counts["replayed"], run.counts["access_updated"], run.counts["updated"]) == (1, 0, 0)
    assert not PendingIndexChange.objects.exists()
    assert visible_titles(users["erin"], "salary", encoder) == {"Salary bands"}
