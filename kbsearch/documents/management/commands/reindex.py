"""``manage.py reindex``: rebuild the search index from the stored chunks (new model or analyzer)."""
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from kbsearch.documents.indexing import index_rebuild
from kbsearch.index.registry import reset_index_backend


class Command(BaseCommand):
    help = "Drop the embedded index and rebuild it from the database's chunks and access lists."

    def handle(self, *args, **options) -> None:
        reset_index_backend()
        path = settings.KBSEARCH_INDEX["OPTIONS"].get("path")
        if settings.KBSEARCH_INDEX["BACKEND"].endswith("EmbeddedIndexBackend") and path:
            for leftover in Path(path).parent.glob(Path(path).name + "*"):
                leftover.unlink()
        count = index_rebuild()
        self.stdout.write(f"reindexed {count} chunks")
