"""A generation records the precision its vectors were computed in, and is always queried and written
in it, whatever KBSEARCH_EMBED_PRECISION says now; one recorded before precision was is float32."""
import json
import logging
import sqlite3
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from connectors.services import source_create, source_sync
from embeddings import precision
from embeddings.loading import clear_encoder_cache, encoder_for, encoder_for_spec, get_encoder
from kbsearch.documents.consistency import index_check
from kbsearch.documents.models import Document
from kbsearch.index.base import IndexMetadata
from kbsearch.index.embedded import EmbeddedIndexBackend
from kbsearch.index.weaviate.schema import parse_description
from kbsearch.search.services import search_run

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_encoders")]

FILES = {
    "_access.yaml": "principals: [public]\n",
    "vpn.en.md": "# VPN setup\n\nConnect to the VPN from home. Pick the nearest gateway.\n",
    "leave.en.md": "# Annual leave\n\nRequest leave in the HR portal.\n",
}


@pytest.fixture
def cpu_with_bf16(monkeypatch):
    monkeypatch.setattr(precision, "cpu_native_bf16", lambda: (True, "avx512_bf16"))


@pytest.fixture
def share(tmp_path, index_backend):
    """A share synced in float32 (the tests' default precision)."""
    root = tmp_path / "share"
    for relative, text in FILES.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text, encoding="utf-8")
    source = source_create(key="share", name="Share", connector="filesystem", config={"root": str(root)})
    assert not source_sync(source=source).errors
    assert index_backend.serving_metadata().precision == "float32"
    return source, root


def encoded_by(monkeypatch, *encoders) -> list[list[str]]:
    """The query texts each encoder encodes from now on."""
    seen = [[] for _ in encoders]
    for texts, encoder in zip(seen, encoders):
        inner = encoder.encode_queries
        monkeypatch.setattr(encoder, "encode_queries", lambda batch, inner=inner, texts=texts: texts.extend(batch)
                            or inner(batch))
    return seen


def test_queries_and_writes_follow_the_serving_generations_precision(share, index_backend, settings, monkeypatch):
    source, root = share
    float32 = encoder_for(index_backend.serving_metadata())
    settings.KBSEARCH_EMBED_PRECISION = "bfloat16"  # the operator changes the setting
    configured = get_encoder()
    assert (configured.precision, float32.precision) == ("bfloat16", "float32")
    assert encoder_for(index_backend.serving_metadata()) is float32
    float32_queries, bfloat16_queries = encoded_by(monkeypatch, float32, configured)
    user = get_user_model().objects.create_user("ann")
    assert search_run(user=user, query="vpn gateway").results
    assert (float32_queries, bfloat16_queries) == (["vpn gateway"], [])
    # A sync still writes float32 vectors into the float32 generation (no mismatch raised).
    (root / "badge.en.md").write_text("# Badges\n\nBadges are renewed every January.\n", encoding="utf-8")
    assert not source_sync(source=source).errors
    assert Document.objects.filter(external_id="badge.en.md").exists()
    assert index_backend.serving_metadata().precision == "float32"
    # The check names the difference and both ways out.
    problems = index_check(index=index_backend).metadata_problems
    assert len(problems) == 1 and "precision 'float32' != 'bfloat16'" in problems[0]
    assert "KBSEARCH_EMBED_PRECISION=float32" in problems[0]


def test_a_rebuild_records_the_automatic_precision_and_queries_follow_it(share, index_backend, settings,
                                                                         cpu_with_bf16, monkeypatch):
    settings.KBSEARCH_EMBED_PRECISION = "auto"
    out = StringIO()
    call_command("index", "create", "--switch", "--foreground", stdout=out, stderr=StringIO())
    assert "into generation 2 (now serving)" in out.getvalue()
    [first, second] = index_backend.generations()
    assert (first.metadata.precision, second.metadata.precision) == ("float32", "bfloat16")
    assert first.metadata.model_version == second.metadata.model_version  # same weights
    serving = encoder_for(second.metadata)
    assert serving.precision == "bfloat16" and serving.precision_choice.requested == "auto"
    assert serving is get_encoder()  # the configured auto encoder, not a second copy of the model
    status = StringIO()
    call_command("index", "status", stdout=status)
    assert "32d, float32, analyzer" in status.getvalue() and "32d, bfloat16, analyzer" in status.getvalue()
    [queries] = encoded_by(monkeypatch, serving)
    assert search_run(user=get_user_model().objects.create_user("ann"), query="annual leave").results
    assert queries == ["annual leave"]
    call_command("index", "rollback", stdout=StringIO())
    assert encoder_for(index_backend.serving_metadata()).precision == "float32"


def test_a_generation_recorded_without_precision_is_float32(share, index_backend, settings):
    path = index_backend.options["path"]
    with sqlite3.connect(path) as connection:  # as a generation written before precision was recorded
        connection.execute("DELETE FROM meta WHERE key = 'precision'")
    legacy = EmbeddedIndexBackend(path=path)
    try:
        metadata = legacy.serving_metadata()
        assert metadata.precision == "float32"
        assert metadata == encoder_for_spec(settings.KBSEARCH_EMBEDDING_MODEL, precision="float32").index_metadata
    finally:
        legacy.close()
    description = "kbsearch index generation " + json.dumps(
        {"model_id": "e5", "model_version": "v1", "dimension": 8, "analyzer_version": 2, "state": "serving"}
    )
    record = parse_description("KbsearchChunk_g1", 1, description)
    assert record.metadata == IndexMetadata("e5", "v1", 8, 2) and record.metadata.precision == "float32"


def test_a_bfloat16_generation_on_a_cpu_without_bf16_is_still_queried_in_bfloat16(settings, monkeypatch, caplog):
    monkeypatch.setattr(precision, "cpu_native_bf16", lambda: (False, "no amx_bf16 or avx512_bf16 in /proc/cpuinfo"))
    built_elsewhere = encoder_for_spec(settings.KBSEARCH_EMBEDDING_MODEL, precision="bfloat16").index_metadata
    clear_encoder_cache()
    settings.KBSEARCH_EMBED_PRECISION = "auto"  # resolves to float32 on this CPU
    with caplog.at_level(logging.INFO, logger="embeddings.encoder"):
        encoder = encoder_for(built_elsewhere)
    assert get_encoder().precision == "float32"
    assert encoder.precision == "bfloat16" and encoder.index_metadata == built_elsewhere
    assert any(record.levelno == logging.WARNING and "slower" in record.getMessage() for record in caplog.records)
