"""``manage.py reindex``: rebuild the search index from the stored chunks (new model or analyzer).

The backend builds a new generation beside the one being served and switches to it atomically;
running web processes pick it up at their next search, so nothing needs restarting.
"""
from django.core.management.base import BaseCommand

from kbsearch.documents.indexing import index_rebuild


class Command(BaseCommand):
    help = "Rebuild the index from the database's chunks and access lists into a new generation and switch to it."

    def handle(self, *args, **options) -> None:
        generation = index_rebuild()
        self.stdout.write(f"reindexed {generation.chunk_count} chunks into generation {generation.number}")
