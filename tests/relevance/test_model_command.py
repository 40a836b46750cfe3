"""``manage.py train`` and ``manage.py model`` for scripts: output, and exit codes that say what
happened (3 refused, 4 no such version, 5 busy)."""
import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from connectors.services import source_create, source_sync
from kbsearch.relevance.management.commands import train as train_command
from kbsearch.relevance.models import ModelVersion, TrainingRun
from kbsearch.relevance.training_runs import training_run_start
from tests.relevance.training_fixtures import relevance_settings, write_snapshot  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("relevance_settings", "fresh_encoders")]
TINY = ["--epochs", "8", "--batch-size", "8", "--learning-rate", "0.002", "--scale", "25", "--update-fraction", "1"]


@pytest.fixture
def synced(tmp_path, index_backend):
    root = tmp_path / "share"
    root.mkdir()
    (root / "_access.yaml").write_text("principals: [public]\n")
    (root / "vpn.en.md").write_text("# VPN\n\nThe remote gateway needs a token.\n")
    assert not source_sync(source=source_create(key="s", name="S", connector="filesystem",
                                                config={"root": str(root)})).errors
    return index_backend


def run(name: str, *args) -> str:
    out = StringIO()
    call_command(name, *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def exit_code(name: str, *args) -> tuple[int, str]:
    with pytest.raises(CommandError) as raised:
        run(name, *args)
    return raised.value.returncode, str(raised.value)


def test_train_promote_list_and_rollback(synced, tmp_path):
    snapshot = write_snapshot(tmp_path / "snapshot")
    out = run("train", "--snapshot", str(snapshot.pk), "--foreground", *TINY)
    version = ModelVersion.objects.get(training_run__isnull=False)
    assert "step 32/32 loss " in out and " s/step" in out
    assert version.training_run.params["scale"] == 25.0
    assert f"training run #{version.training_run.pk}: 32/32 steps (completed) in " in out
    assert f"model version {version.name}: {version.spec}" in out and "gate passed: in-domain vector" in out

    listed = json.loads(run("model", "list", "--json"))
    assert [(row["name"], row["status"], row["gate_passed"]) for row in listed] == [
        (version.name, "evaluated", True), (version.parent.name, "promoted", None)]
    assert listed[0]["in_domain_gain"] >= 0.005 and listed[0]["parent"] == version.parent.name

    assert run("model", "promote", version.name, "--foreground") == f"{version.name} serves\n"
    assert synced.serving_metadata().model_id == version.spec
    assert exit_code("model", "promote", version.name) == (3, f"{version.name} already serves")
    text = run("model", "list")
    assert f"{version.name}: promoted, gate passed, in-domain +" in text and f"{version.parent.name}: retired" in text

    assert run("model", "rollback") == f"rolled back: {version.parent.name} serves\n"
    code, message = exit_code("model", "rollback")
    assert code == 1 and "no older generation" in message


def test_refusals_and_missing_things_have_their_exit_codes(synced, tmp_path, settings):
    settings.KBSEARCH_RELEVANCE_MIN_GAIN = 0.9
    snapshot = write_snapshot(tmp_path / "snapshot")
    code, message = exit_code("train", "--snapshot", str(snapshot.pk), "--foreground", *TINY)
    assert code == 3 and message.startswith("the gate refused ")
    version = ModelVersion.objects.get(training_run__isnull=False)
    code, message = exit_code("model", "promote", version.name)
    assert code == 3 and "the evaluation gate refused it" in message
    assert exit_code("model", "promote", "nope") == (4, "no model version 'nope' (manage.py model list)")
    assert exit_code("model", "evaluate", "nope")[0] == 4
    code, message = exit_code("model", "evaluate", version.name)  # evaluated again: still refused
    assert code == 3 and message == f"the gate refused {version.name}"

    training_run_start(snapshot=snapshot, enqueue=False)
    code, message = exit_code("train", "--snapshot", str(snapshot.pk))
    assert code == 5 and "is queued" in message
    assert exit_code("train", "--snapshot", "999") == (1, "no training-data snapshot #999")
    code, message = exit_code("train", "--snapshot", str(snapshot.pk), "--learning-rate", "3")
    assert code == 1


def test_cancel_and_snapshot_building(tmp_path, monkeypatch, index_backend, django_capture_on_commit_callbacks):
    snapshot = write_snapshot(tmp_path / "snapshot")
    queued = training_run_start(snapshot=snapshot, enqueue=False)
    assert run("train", "--cancel", str(queued.pk)) == f"training run #{queued.pk}: cancelled\n"
    assert exit_code("train", "--cancel", str(queued.pk)) == (1, f"training run #{queued.pk} is cancelled: nothing to cancel")

    built = write_snapshot(tmp_path / "built")
    monkeypatch.setattr(train_command, "_builder", lambda: lambda: built)
    with django_capture_on_commit_callbacks(execute=True):  # queued; runs at commit, inline without a broker
        out = run("train", "--max-steps", "1", "--batch-size", "8", "--no-evaluate")
    trained = TrainingRun.objects.get(snapshot=built)
    assert out == f"built training-data snapshot #{built.pk}\ntraining run #{trained.pk} on snapshot #{built.pk} is queued\n"
    assert (trained.status, trained.step) == (TrainingRun.Status.SUCCEEDED, 1)
