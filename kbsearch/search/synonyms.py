"""The enabled synonym sets, compiled once per process and re-read when any process changed them.

Each search reads one row, the revision (``SynonymRevision``: a change counter and its time), and
compiles the enabled sets again only when it differs from the one the cached table was built at.
Every save or delete of a set bumps the revision in the same transaction (the receivers below), so
another web or worker process sees the change at its next search; the writing process also drops
its own cache at once. The time is compared with the counter because a database restored from a
backup (or a test rolled back) can bring back a counter this process has already cached.
``QuerySet.update`` sends no signal: code that changes sets in bulk calls ``synonym_revision_bump``.
"""
import threading

from django.conf import settings
from django.db.models import F
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone

from kbsearch.search.models import SynonymRevision, SynonymSet
from kbsearch.text.synonyms import SynonymTable

_lock = threading.Lock()
_cache: dict[str, object] = {"revision": None, "table": SynonymTable()}


def synonym_revision() -> tuple[int, object]:
    """The current revision as (counter, time of the last change); (0, None) before any change."""
    row = SynonymRevision.objects.filter(pk=1).values_list("number", "changed_at").first()
    return (row[0], row[1]) if row else (0, None)


def synonym_table() -> SynonymTable:
    """The enabled sets, compiled; rebuilt when the revision or the weight setting changed."""
    revision = (*synonym_revision(), settings.KBSEARCH_SYNONYM_WEIGHT)
    with _lock:
        if _cache["revision"] == revision:
            return _cache["table"]
    table = SynonymTable(
        # A row of an unknown kind (written around the admin's validation) is skipped, not fatal to search.
        (s.spec() for s in SynonymSet.objects.filter(enabled=True, kind__in=SynonymSet.Kind.values).order_by("pk")),
        weight=settings.KBSEARCH_SYNONYM_WEIGHT,
    )
    with _lock:
        _cache.update(revision=revision, table=table)
    return table


def synonym_cache_clear() -> None:
    """Forget this process's compiled table (the next search compiles it again)."""
    with _lock:
        _cache.update(revision=None, table=SynonymTable())


def synonym_revision_bump() -> None:
    """Record that synonym sets changed, for every process (call inside the change's transaction)."""
    now = timezone.now()
    if not SynonymRevision.objects.filter(pk=1).update(number=F("number") + 1, changed_at=now):
        SynonymRevision.objects.get_or_create(pk=1)
        SynonymRevision.objects.filter(pk=1).update(number=F("number") + 1, changed_at=now)
    synonym_cache_clear()


@receiver(post_save, sender=SynonymSet, dispatch_uid="synonym_set_saved")
@receiver(post_delete, sender=SynonymSet, dispatch_uid="synonym_set_deleted")
def _synonym_set_changed(**kwargs) -> None:
    synonym_revision_bump()
