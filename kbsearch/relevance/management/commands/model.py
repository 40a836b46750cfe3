"""``manage.py model``: model versions for IT who script the relevance loop.

  model list [--json]            versions with status, gate verdict and in-domain gain
  model evaluate NAME            run the evaluation gate again, against the model serving now
  model promote NAME [--foreground]   re-embed into a new generation and switch when done
  model rollback                 switch back to the previous generation

A promotion's re-embed is queued on the Celery ``embed`` queue (run inline without a broker);
``--foreground`` runs it here. Statuses follow the index: a version is ``promoted`` once its
generation serves.

Exit codes: 0 done, 1 failed or bad input, 3 refused (the gate did not pass, it was evaluated
against another model, or it already serves), 4 no such version, 5 a re-embed is already building.
"""
import json

from django.core.management.base import BaseCommand, CommandError

from kbsearch.documents.generations import ReembedBusy, index_reembed_execute
from kbsearch.documents.models import ReembedRun
from kbsearch.index.base import IndexBackendError
from kbsearch.relevance.gate import GATE_METRIC, IN_DOMAIN
from kbsearch.relevance.models import ModelVersion
from kbsearch.relevance.registry import (
    PromotionRefused,
    model_rollback,
    model_version_evaluate,
    model_version_promote,
    model_versions_reconcile,
)

EXIT_REFUSED = 3
EXIT_NOT_FOUND = 4
EXIT_BUSY = 5


class Command(BaseCommand):
    help = "List, evaluate, promote and roll back model versions of the relevance loop."

    def add_arguments(self, parser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        actions.add_parser("list", help="Model versions.").add_argument("--json", action="store_true")
        actions.add_parser("evaluate", help="Run the evaluation gate again.").add_argument("name")
        promote = actions.add_parser("promote", help="Re-embed with a version and switch to it.")
        promote.add_argument("name")
        promote.add_argument("--foreground", action="store_true", help="Run the re-embed here.")
        actions.add_parser("rollback", help="Switch back to the previous generation.")

    def handle(self, *args, action: str, **options) -> None:
        try:
            getattr(self, f"_{action}")(**options)
        except PromotionRefused as error:
            raise CommandError(str(error), returncode=EXIT_REFUSED) from error
        except ReembedBusy as error:
            raise CommandError(str(error), returncode=EXIT_BUSY) from error
        except (IndexBackendError, ValueError) as error:
            raise CommandError(str(error)) from error

    def _list(self, *, json: bool, **_options) -> None:  # noqa: A002 (the option's name)
        model_versions_reconcile()
        versions = list(ModelVersion.objects.select_related("parent", "reembed_run"))
        if json:
            self.stdout.write(_dumps([_row(version) for version in versions]))
            return
        if not versions:
            self.stdout.write("no model versions yet")
        for version in versions:
            row = _row(version)
            gain = "" if row["in_domain_gain"] is None else f", in-domain {row['in_domain_gain']:+.4f}"
            gate = {True: "gate passed", False: "gate refused", None: "not evaluated"}[version.gate_passed]
            promoting = f", promoting (re-embed #{row['promotion']['run']} {row['promotion']['status']})" \
                if row["promotion"] and row["promotion"]["status"] in ReembedRun.ACTIVE else ""
            parent = f", from {version.parent.name}" if version.parent else ""
            self.stdout.write(f"{version.name}: {version.status}, {gate}{gain}{promoting}{parent} [{version.spec}]")

    def _evaluate(self, *, name: str, **_options) -> None:
        version = model_version_evaluate(version=_version(name))
        self.stdout.write(f"{version.name}: gate {version.gate_summary}")
        if not version.gate_passed:
            raise CommandError(f"the gate refused {version.name}", returncode=EXIT_REFUSED)

    def _promote(self, *, name: str, foreground: bool, **_options) -> None:
        version = model_version_promote(version=_version(name), enqueue=not foreground)
        run = version.reembed_run
        if foreground and run is not None and run.status in ReembedRun.ACTIVE:
            run = index_reembed_execute(run_id=run.pk)
            if run.status != ReembedRun.Status.SUCCEEDED:
                raise CommandError(f"re-embed #{run.pk} {run.status}{': ' + run.error if run.error else ''}")
        model_versions_reconcile()
        version.refresh_from_db()
        if version.status == ModelVersion.Status.PROMOTED:
            self.stdout.write(f"{version.name} serves")
        else:
            self.stdout.write(f"{version.name}: promotion queued (re-embed #{run.pk}); it serves when the re-embed "
                              "switches (`manage.py index status`, `manage.py model list`)")

    def _rollback(self, **_options) -> None:
        version = model_rollback()
        self.stdout.write(f"rolled back: {version.name if version else 'the previous generation'} serves")


def _version(name: str) -> ModelVersion:
    version = ModelVersion.objects.filter(name=name).first()
    if version is None:
        raise CommandError(f"no model version {name!r} (manage.py model list)", returncode=EXIT_NOT_FOUND)
    return version


def _row(version: ModelVersion) -> dict:
    in_domain = next((entry for entry in version.report.get("sets", []) if entry.get("kind") == IN_DOMAIN), {})
    gate_mode = version.report.get("options", {}).get("gate_mode")
    gain = in_domain.get("modes", {}).get(gate_mode, {}).get("delta", {}).get(GATE_METRIC)
    run = version.reembed_run
    return {
        "name": version.name, "status": version.status, "spec": version.spec, "fingerprint": version.fingerprint,
        "parent": version.parent.name if version.parent else None, "gate_passed": version.gate_passed,
        "gate_summary": version.gate_summary, "in_domain_gain": gain,
        "training_run": version.training_run_id, "snapshot": version.snapshot_id,
        "promotion": {"run": run.pk, "status": run.status} if run else None,
        "created_at": version.created_at.isoformat(),
    }


def _dumps(rows: list[dict]) -> str:
    return json.dumps(rows, indent=2, ensure_ascii=False)
