"""``manage.py reindex``: rebuild the search index from the stored chunks (new model or analyzer).

The backend builds a new generation beside the one being served and switches to it atomically;
running web processes pick it up at their next search, so nothing needs restarting. A progress bar
(chunks, rate, ETA) shows on a terminal unless ``--no-progress`` or ``--verbosity 0``.
"""
from django.core.management.base import BaseCommand

from kbsearch.documents.indexing import index_rebuild
from kbsearch.progress import add_progress_argument, progress_bar


class Command(BaseCommand):
    help = "Rebuild the index from the database's chunks and access lists into a new generation and switch to it."

    def add_arguments(self, parser) -> None:
        add_progress_argument(parser)

    def handle(self, *args, **options) -> None:
        with progress_bar(options, description="reindex", unit=" chunks", stream=self.stderr) as bar:
            generation = index_rebuild(on_progress=bar.update)
        self.stdout.write(f"reindexed {generation.chunk_count} chunks into generation {generation.number}")
