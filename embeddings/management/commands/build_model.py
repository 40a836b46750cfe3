"""``manage.py build_model``: build (or find) the configured embedding model before first use.

A build (about 20 s) shows a progress bar on a terminal unless ``--no-progress`` or ``--verbosity 0``.
"""
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from embeddings.loading import ModelSpecError, resolve_model
from kbsearch.progress import add_progress_argument, progress_bar


class Command(BaseCommand):
    help = "Resolve KBSEARCH_EMBEDDING_MODEL, building the bundled default offline if needed."

    def add_arguments(self, parser) -> None:
        add_progress_argument(parser)

    def handle(self, *args, **options) -> None:
        spec = settings.KBSEARCH_EMBEDDING_MODEL
        try:
            with progress_bar(options, description=f"building {spec}", unit=" steps", stream=self.stderr) as bar:
                path = resolve_model(spec, cache_dir=settings.KBSEARCH_MODEL_CACHE_DIR, on_progress=bar.update)
        except ModelSpecError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"model {spec} ready at {path}")
