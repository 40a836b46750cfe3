"""``manage.py build_model``: build (or find) the configured embedding model before first use."""
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from embeddings.loading import ModelSpecError, resolve_model


class Command(BaseCommand):
    help = "Resolve KBSEARCH_EMBEDDING_MODEL, building the bundled default offline if needed."

    def handle(self, *args, **options) -> None:
        spec = settings.KBSEARCH_EMBEDDING_MODEL
        try:
            path = resolve_model(spec, cache_dir=settings.KBSEARCH_MODEL_CACHE_DIR)
        except ModelSpecError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"model {spec} ready at {path}")
