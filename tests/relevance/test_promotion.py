"""Promotion and rollback of model versions through index generations, with the tiny model.

End to end: a training run's model passes the gate, is promoted (re-embedded into generation 2,
switched when built), and searches then encode queries with it although the process is configured
with the base model; a rollback switches back and the base model encodes again; promoting once
more switches to the kept generation without re-embedding. Versions' statuses follow the index.
"""
import pytest
from django.contrib.auth import get_user_model

from connectors.services import source_create, source_sync
from embeddings.loading import encoder_for, encoder_for_spec
from kbsearch.documents.generations import ReembedBusy, index_reembed_start
from kbsearch.documents.models import ReembedRun
from kbsearch.relevance.models import ModelVersion
from kbsearch.relevance.registry import (
    PromotionRefused,
    model_rollback,
    model_version_promote,
    model_versions_reconcile,
)
from kbsearch.relevance.training_runs import training_run_execute, training_run_start
from kbsearch.search.services import search_run
from tests.relevance.training_fixtures import TINY_PARAMS, relevance_settings, write_snapshot  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("relevance_settings", "fresh_encoders")]

FILES = {
    "_access.yaml": "principals: [public]\n",
    "vpn.en.md": "# VPN\n\nThe remote gateway needs the client installed and a token.\n",
    "leave.en.md": "# Leave\n\nAnnual holidays are requested in the HR portal.\n",
}


@pytest.fixture
def synced(tmp_path, index_backend):
    root = tmp_path / "share"
    root.mkdir()
    for name, text in FILES.items():
        (root / name).write_text(text, encoding="utf-8")
    source = source_create(key="share", name="Share", connector="filesystem", config={"root": str(root)})
    assert not source_sync(source=source).errors
    return index_backend


def queries_counted(monkeypatch, encoder) -> list[str]:
    texts: list[str] = []
    inner = encoder.encode_queries
    monkeypatch.setattr(encoder, "encode_queries", lambda batch: texts.extend(batch) or inner(batch))
    return texts


def test_promote_then_rollback_then_promote_again(synced, tmp_path, settings, monkeypatch,
                                                  django_capture_on_commit_callbacks):
    index = synced
    run = training_run_start(snapshot=write_snapshot(tmp_path / "snapshot"), params=TINY_PARAMS, enqueue=False)
    version = training_run_execute(run_id=run.pk).model_version
    base = version.parent
    assert (base.spec, base.status, version.gate_passed) == (settings.KBSEARCH_EMBEDDING_MODEL, "promoted", True)
    assert version.status == ModelVersion.Status.EVALUATED

    with django_capture_on_commit_callbacks(execute=True):  # eager without a broker: re-embed, then reconcile
        model_version_promote(version=version)
    version.refresh_from_db()
    base.refresh_from_db()
    assert (version.status, base.status) == (ModelVersion.Status.PROMOTED, ModelVersion.Status.RETIRED)
    assert version.reembed_run.status == ReembedRun.Status.SUCCEEDED and version.reembed_run.switch_when_done
    serving = index.serving_metadata()
    assert (serving.model_id, serving.model_version) == (version.spec, version.fingerprint)
    assert [g.number for g in index.generations() if g.serving] == [2]

    # The query encoder follows the serving generation, though the process is configured with the base.
    trained, configured = encoder_for_spec(version.spec), encoder_for_spec(base.spec)
    assert encoder_for(serving) is trained
    trained_queries, base_queries = queries_counted(monkeypatch, trained), queries_counted(monkeypatch, configured)
    user = get_user_model().objects.create_user("ann")
    assert search_run(user=user, query="remote gateway token").results
    assert (len(trained_queries), len(base_queries)) == (1, 0)

    assert model_rollback() == base
    version.refresh_from_db()
    assert (version.status, version.retired_at is not None) == (ModelVersion.Status.RETIRED, True)
    assert index.serving_metadata().model_id == base.spec and encoder_for(index.serving_metadata()) is configured
    assert search_run(user=user, query="annual holidays").results
    assert (len(trained_queries), len(base_queries)) == (1, 1)

    reembeds = ReembedRun.objects.count()
    model_version_promote(version=version)  # its generation was kept: switched to, not re-embedded
    version.refresh_from_db()
    assert version.status == ModelVersion.Status.PROMOTED and ReembedRun.objects.count() == reembeds
    assert index.serving_metadata().model_version == version.fingerprint


def evaluated(spec: str, baseline_fingerprint: str, *, passed: bool = True, name: str = "candidate") -> ModelVersion:
    metadata = encoder_for_spec(spec).index_metadata
    return ModelVersion.objects.create(
        name=name, spec=spec, fingerprint=metadata.model_version, dimension=metadata.dimension,
        status=ModelVersion.Status.EVALUATED, gate_passed=passed, gate_summary="passed" if passed else "refused: x",
        report={"baseline": {"spec": "base", "fingerprint": baseline_fingerprint}},
    )


def test_promotion_is_refused_without_a_passed_gate_or_against_another_baseline(synced, second_model_dir):
    serving = model_versions_reconcile(index=synced)
    refused = evaluated(str(second_model_dir), serving.fingerprint, passed=False)
    with pytest.raises(PromotionRefused, match="the evaluation gate refused it; refused: x"):
        model_version_promote(version=refused)
    refused.gate_passed, refused.gate_summary = None, ""
    refused.save()
    with pytest.raises(PromotionRefused, match="has not been evaluated"):
        model_version_promote(version=refused)
    stale = evaluated(str(second_model_dir), "0123456789abcdef", name="stale")
    with pytest.raises(PromotionRefused, match="was evaluated against base \\(0123456789abcdef\\), but .* serves now"):
        model_version_promote(version=stale)
    with pytest.raises(PromotionRefused, match="already serves"):
        model_version_promote(version=serving)
    assert not ReembedRun.objects.exists() and synced.current_generation() == 1


def test_a_promotion_waits_for_no_other_reembed(synced, second_model_dir, django_capture_on_commit_callbacks):
    serving = model_versions_reconcile(index=synced)
    candidate = evaluated(str(second_model_dir), serving.fingerprint)
    index_reembed_start(model_spec="some-model", enqueue=False)
    with pytest.raises(ReembedBusy):
        model_version_promote(version=candidate)
    candidate.refresh_from_db()
    assert candidate.reembed_run is None and candidate.status == ModelVersion.Status.EVALUATED


def test_a_switch_made_elsewhere_is_reflected(synced, second_model_dir):
    from kbsearch.documents.generations import index_generation_switch, index_reembed_execute

    base = model_versions_reconcile(index=synced)
    run = index_reembed_start(model_spec=str(second_model_dir), enqueue=False)
    index_reembed_execute(run_id=run.pk)
    index_generation_switch(number=2)  # from the generations page, not through a version
    serving = model_versions_reconcile(index=synced)
    base.refresh_from_db()
    assert (serving.spec, serving.status, serving.training_run) == (str(second_model_dir), "promoted", None)
    assert base.status == ModelVersion.Status.RETIRED
