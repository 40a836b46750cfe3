"""The bar of issue 9, at test size: re-embedding an index with a second model while a client searches
continuously gives no failed and no empty search, and switch and rollback are one command each.

1,200 chunks here (300 documents x 4) to keep the suite fast; ``bench/bench_reembed.py`` runs the
same at 10,000 chunks. The searching thread runs ``search_run`` as the web does (its own database
connection, so the data is committed: ``transaction=True``).
"""
import threading
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection

from embeddings.loading import clear_encoder_cache, encoder_for_spec
from kbsearch.documents.indexing import index_rebuild
from kbsearch.documents.models import Chunk
from kbsearch.search.services import search_run
from tests.documents.bulk_corpus import QUERIES, bulk_corpus

pytestmark = pytest.mark.django_db(transaction=True)


class Searcher(threading.Thread):
    def __init__(self, user) -> None:
        super().__init__(daemon=True)
        self.user, self.stop = user, threading.Event()
        self.done, self.failures, self.empty = 0, [], 0

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                try:
                    response = search_run(user=self.user, query=QUERIES[self.done % len(QUERIES)])
                except Exception as error:  # every failure is what the test counts
                    self.failures.append(repr(error))
                else:
                    self.empty += not response.results
                self.done += 1
        finally:
            connection.close()


def test_searches_never_fail_or_come_back_empty_during_reembed_switch_and_rollback(index_backend, settings,
                                                                                   second_model_dir):
    clear_encoder_cache()
    bulk_corpus(documents=300, chunks_per_document=4)
    first = encoder_for_spec(settings.KBSEARCH_EMBEDDING_MODEL)
    index_rebuild(encoder=first)
    assert index_backend.chunk_count() == Chunk.objects.count() == 1200
    searcher = Searcher(get_user_model().objects.create_user("ann"))
    searcher.start()
    try:
        out = StringIO()
        call_command("index", "reembed", "--model", str(second_model_dir), "--foreground", stdout=out, stderr=StringIO())
        during_reembed = searcher.done
        call_command("index", "switch", "3", stdout=out)  # 1: the first index, 2: index_rebuild, 3: re-embed
        assert index_backend.serving_metadata().dimension == 48
        call_command("index", "rollback", stdout=out)
        assert index_backend.serving_metadata() == first.index_metadata
        call_command("index", "switch", "3", stdout=out)
        after = searcher.done
        while searcher.done < after + 5:  # a few searches on the final generation
            searcher.join(0.05)
    finally:
        searcher.stop.set()
        searcher.join(30)
        clear_encoder_cache()
    assert "into generation 3" in out.getvalue()
    assert during_reembed > 0
    assert searcher.failures == [] and searcher.empty == 0, (searcher.failures[:3], searcher.empty)
