"""Model versions: evaluation, promotion and rollback through index generations.

There is no second source of truth about which model serves: the index records, per generation,
the spec and weights' fingerprint that built it (``IndexMetadata``), and ``model_versions_reconcile``
makes the versions agree with it: the version that built the serving generation is ``promoted``, a
version that served before is ``retired``. So a switch or rollback made from the generations page or
``manage.py index`` is reflected here too, and a promotion becomes ``promoted`` only when its switch
has happened.

Promotion is refused unless the version passed the evaluation gate against the model serving now
(a report against another baseline says nothing about replacing this one). It re-embeds every
chunk with the version's model into a new generation in the background (the ``embed`` queue) and
switches when done; when a kept generation of that very model exists (a promotion rolled back), it
switches to it instead, after catching it up. Rollback switches to the previous generation.
Queries follow the serving generation by themselves (``embeddings.loading.encoder_for``).
"""
import logging
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from embeddings.loading import encoder_for, resolve_model
from kbsearch.documents.generations import index_generation_rollback, index_generation_switch, index_reembed_start
from kbsearch.index.base import BaseIndexBackend, IndexMetadata
from kbsearch.index.registry import get_index_backend
from kbsearch.relevance.gate import GateOptions, gate_evaluate
from kbsearch.relevance.models import ModelVersion, TrainingDataSnapshot

logger = logging.getLogger(__name__)


class PromotionRefused(Exception):
    """The version may not serve (gate not passed, evaluated against another model, already serving)."""


def serving_model_spec(index: BaseIndexBackend | None = None) -> str:
    """The spec of the model that serves: the serving generation's, else the configured one."""
    metadata = (index or get_index_backend()).serving_metadata()
    return metadata.model_id if metadata is not None else settings.KBSEARCH_EMBEDDING_MODEL


def model_version_register(*, spec: str, metadata: IndexMetadata, **fields) -> ModelVersion:
    """The version of ``spec`` with these weights, created (with ``fields``) if unknown."""
    found = ModelVersion.objects.filter(spec=spec, fingerprint=metadata.model_version).first()
    if found is not None:
        return found
    name = _unique_name(fields.pop("name", None) or _short_name(spec), metadata.model_version)
    return ModelVersion.objects.create(
        name=name, spec=spec, fingerprint=metadata.model_version, dimension=metadata.dimension, **fields
    )


def model_versions_reconcile(*, index: BaseIndexBackend | None = None) -> ModelVersion | None:
    """Make statuses follow the index (see the module docstring); the serving version, or None
    while there is no index. A serving model nobody registered is registered here."""
    serving = (index or get_index_backend()).serving_metadata()
    if serving is None:
        return None
    now = timezone.now()
    with transaction.atomic():
        current = model_version_register(
            spec=serving.model_id, metadata=serving, status=ModelVersion.Status.PROMOTED, promoted_at=now
        )
        replaced = ModelVersion.objects.select_for_update().filter(status=ModelVersion.Status.PROMOTED)
        for version in replaced.exclude(pk=current.pk):
            ModelVersion.objects.filter(pk=version.pk).update(status=ModelVersion.Status.RETIRED, retired_at=now)
            logger.info("model version %s retired (%s serves)", version.name, current.name)
        if current.status != ModelVersion.Status.PROMOTED:
            ModelVersion.objects.filter(pk=current.pk).update(status=ModelVersion.Status.PROMOTED, promoted_at=now)
            logger.info("model version %s now serves", current.name)
    current.refresh_from_db()
    return current


def model_version_evaluate(*, version: ModelVersion, options: GateOptions | None = None,
                           candidate=None) -> ModelVersion:
    """Run the gate for ``version`` against the model serving now and store the report.
    ``candidate`` is the version's encoder when the caller has it loaded already."""
    options = options or GateOptions.from_settings()
    index = get_index_backend()
    serving = index.serving_metadata()
    if serving is not None and (serving.model_id, serving.model_version) == (version.spec, version.fingerprint):
        raise PromotionRefused(f"{version.name} serves now: there is nothing to compare it with")
    baseline = encoder_for(serving)
    candidate = candidate or load_encoder(version.spec)
    report = gate_evaluate(
        baseline=baseline, candidate=candidate, heldout_dir=heldout_dir(version.snapshot), options=options
    )
    status = version.status
    if status == ModelVersion.Status.TRAINED:
        status = ModelVersion.Status.EVALUATED
    verdict = report["verdict"]
    ModelVersion.objects.filter(pk=version.pk).update(
        report=report, gate_passed=verdict["passed"], gate_summary=verdict["summary"],
        evaluated_at=timezone.now(), status=status,
    )
    logger.info("model version %s: gate %s", version.name, verdict["summary"])
    version.refresh_from_db()
    return version


def model_version_promote(*, version: ModelVersion, enqueue: bool = True,
                          index: BaseIndexBackend | None = None) -> ModelVersion:
    """Make ``version`` serve (see the module docstring). Raises ``PromotionRefused``, or
    ``ReembedBusy`` while another re-embed builds. With ``enqueue`` False the caller runs the
    re-embed (``version.reembed_run``) itself, then reconciles."""
    index = index or get_index_backend()
    model_versions_reconcile(index=index)
    version.refresh_from_db()
    if version.status == ModelVersion.Status.PROMOTED:
        raise PromotionRefused(f"{version.name} already serves")
    if version.gate_passed is not True:
        state = "has not been evaluated" if version.gate_passed is None else "refused it"
        raise PromotionRefused(f"{version.name}: the evaluation gate {state}; {version.gate_summary}".rstrip("; "))
    serving = index.serving_metadata()
    baseline = version.report.get("baseline", {})
    if serving is not None and baseline.get("fingerprint") != serving.model_version:
        raise PromotionRefused(
            f"{version.name} was evaluated against {baseline.get('spec')} ({baseline.get('fingerprint')}), but "
            f"{serving.model_id} ({serving.model_version}) serves now: evaluate it again (manage.py model evaluate)"
        )
    kept = [
        generation.number for generation in index.generations()
        if not generation.serving and generation.metadata is not None
        and (generation.metadata.model_id, generation.metadata.model_version) == (version.spec, version.fingerprint)
    ]
    if kept:
        index_generation_switch(number=max(kept), index=index)
        model_versions_reconcile(index=index)
    else:
        run = index_reembed_start(model_spec=version.spec, switch_when_done=True, enqueue=False)
        ModelVersion.objects.filter(pk=version.pk).update(reembed_run=run)
        if enqueue:
            from kbsearch.relevance.tasks import promotion_enqueue

            transaction.on_commit(lambda: promotion_enqueue(run.pk))
        logger.info("model version %s: promotion started (re-embed #%s)", version.name, run.pk)
    version.refresh_from_db()
    return version


def model_rollback(*, index: BaseIndexBackend | None = None) -> ModelVersion | None:
    """Switch back to the previous generation; the version serving afterwards."""
    index = index or get_index_backend()
    index_generation_rollback(index=index)
    return model_versions_reconcile(index=index)


def heldout_dir(snapshot: TrainingDataSnapshot | None) -> Path | None:
    """The snapshot's in-domain held-out set (BEIR layout), if it has one."""
    if snapshot is None:
        return None
    folder = Path(snapshot.path) / "heldout"
    return folder if (folder / "corpus.jsonl").is_file() else None


def load_encoder(spec: str):
    """An encoder for ``spec`` outside the process-wide cache: a candidate is evaluated once, and a
    long-lived worker must not keep every model it ever trained in memory."""
    from embeddings.encoder import Encoder

    return Encoder(
        resolve_model(spec, cache_dir=Path(settings.KBSEARCH_MODEL_CACHE_DIR)), model_id=spec,
        batch_size=int(settings.KBSEARCH_EMBED_BATCH_SIZE), precision=settings.KBSEARCH_EMBED_PRECISION,
    )


def _short_name(spec: str) -> str:
    return Path(spec).name if ("/" in spec and Path(spec).expanduser().exists()) else spec


def _unique_name(name: str, fingerprint: str) -> str:
    name = name[:150]
    if not ModelVersion.objects.filter(name=name).exists():
        return name
    return f"{name}@{fingerprint[:12]}"
