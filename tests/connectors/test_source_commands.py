"""``add_source``, ``sync_source`` and ``reindex``: an administrator's path from a folder to search.

(These commands live in ``connectors`` and ``documents``; the tests sit together here because they
drive one workflow, each step building on the last.)
"""
import json
import re

import pytest
from django.core.management import CommandError, call_command

from kbsearch.documents.models import Chunk, Document, Source
from kbsearch.search.services import search_run
from tests.knowledge_base import use_encoder, users_create, write_tree

pytestmark = pytest.mark.django_db

FILES = {
    "_access.yaml": "principals: [public]\n",
    "vpn.en.md": "# VPN setup\n\nConnect to the VPN from home.\n",
    "printer.en.md": "# Printers\n\nThe printer on floor 3 needs a badge.\n",
    "secret/_access.yaml": "principals: [group:hr]\n",
    "secret/salary.en.md": "# Salary bands\n\nBand L3 pays well.\n",
}
EXTERNAL_IDS = {"vpn.en.md", "printer.en.md", "secret/salary.en.md"}


@pytest.fixture
def folder(tmp_path, index_backend, tiny_encoder, monkeypatch):
    use_encoder(monkeypatch, tiny_encoder)  # what the commands' get_encoder() returns
    return write_tree(tmp_path / "docs", FILES)


def run(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def add(folder, key: str = "docs") -> str:
    return run("add_source", key, "--connector", "filesystem", "--config", json.dumps({"root": str(folder)}), "--name", "Docs")


def test_add_source_registers_and_reconfigures_a_source(folder, tmp_path):
    assert add(folder) == "source docs (filesystem) saved\n"
    source = Source.objects.get(key="docs")
    assert (source.name, source.connector, source.config) == ("Docs", "filesystem", {"root": str(folder)})
    add(tmp_path)  # the same key again updates it, never a second source
    assert Source.objects.get(key="docs").config == {"root": str(tmp_path)} and Source.objects.count() == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--connector", "filesystem", "--config", "{not json"], "Expecting property name"),
        (["--connector", "filesystem", "--config", "{}"], "filesystem connector needs 'root'"),
        (["--connector", "gopher", "--config", "{}"], "unknown connector 'gopher'; registered: confluence, filesystem"),
    ],
)
def test_add_source_refuses_bad_input_and_saves_nothing(db, args, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        call_command("add_source", "docs", *args)
    assert not Source.objects.exists()


def test_sync_source_ingests_the_folder_then_polls(folder):
    add(folder)
    first = run("sync_source", "docs")
    assert first.startswith("docs: full sync succeeded:")
    assert set(Document.objects.values_list("external_id", flat=True)) == EXTERNAL_IDS
    assert Source.objects.get(key="docs").last_synced_at is not None
    (folder / "printer.en.md").unlink()
    second = run("sync_source", "docs")
    assert second.startswith("docs: poll sync succeeded:")
    assert set(Document.objects.values_list("external_id", flat=True)) == EXTERNAL_IDS - {"printer.en.md"}
    assert run("sync_source", "docs", "--full").startswith("docs: full sync succeeded:")


def test_sync_source_reports_bad_files_and_keeps_the_rest(folder):
    add(folder)
    (folder / "empty.en.md").write_text("   \n")
    output = run("sync_source", "docs")
    assert "partial" in output.splitlines()[0]
    assert "  ! empty.en.md: document has no text" in output
    assert set(Document.objects.values_list("external_id", flat=True)) == EXTERNAL_IDS


def test_sync_source_of_an_unknown_key_says_how_to_add_it(db):
    with pytest.raises(CommandError, match=re.escape("no source 'nope'; add it with manage.py add_source")):
        call_command("sync_source", "nope")


def test_sync_source_of_a_vanished_folder_fails_with_the_reason(folder, tmp_path):
    add(tmp_path / "gone")
    with pytest.raises(CommandError, match="sync of docs failed: .*gone is not a readable folder"):
        call_command("sync_source", "docs")
    assert not Document.objects.exists()


def test_reindex_rebuilds_every_chunk_and_search_finds_the_same(folder, tiny_encoder):
    add(folder)
    run("sync_source", "docs")
    alice = users_create({"alice": {"groups": ["hr"]}})["alice"]

    def found(query):
        return [(r.document.external_id, r.rank) for r in search_run(user=alice, query=query, encoder=tiny_encoder).results]

    before = {query: found(query) for query in ("salary", "VPN printer")}
    output = run("reindex")
    assert re.fullmatch(rf"reindexed {Chunk.objects.count()} chunks into generation 2\n", output), output
    assert {query: found(query) for query in before} == before
    assert {external_id for external_id, _ in before["salary"]} == EXTERNAL_IDS
