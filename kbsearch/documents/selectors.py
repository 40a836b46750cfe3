"""Reading documents on behalf of a user: fetch and authorize in one step.

Every read of a single document for a user goes through ``access_document_by_id`` so no caller can
fetch first and forget to check. A document the user may not see and a document that does not
exist raise the same ``DocumentNotFound`` with the same message, so responses (404, never 403)
do not reveal that a hidden document exists.

``index_status`` reads the index's generations and the re-embeds, for operators (command, admin).
"""
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Q, QuerySet
from django.http import Http404

from access.resolvers import principals_for
from embeddings.loading import loaded_precisions
from kbsearch.documents.ids import is_storable_id
from kbsearch.documents.models import Document, DocumentAccess, ReembedRun, Source
from kbsearch.documents.places import place_split, place_value
from kbsearch.index.base import BaseIndexBackend, GenerationInfo
from kbsearch.index.registry import get_index_backend

_RECENT_RUNS = 10


class DocumentNotFound(Http404):
    """No such document, or one the user may not see (deliberately indistinguishable)."""

    def __init__(self) -> None:
        super().__init__("Document not found.")


def document_visible_ids(*, user, document_ids: list[int]) -> set[int]:
    """The subset of ``document_ids`` that ``user`` may see (access rows meet their principals)."""
    principals = principals_for(user)
    if not principals or not document_ids:
        return set()
    return set(
        DocumentAccess.objects.filter(document_id__in=document_ids, principal__in=principals)
        .values_list("document_id", flat=True)
        .distinct()
    )


def access_document_by_id(document_id: int, user) -> Document:
    """The document if ``user`` may see it; raises DocumentNotFound when missing or hidden.

    Visibility: one of the document's access principals is one of the user's. A document without
    access rows is visible to nobody (fail closed), as is any document to an anonymous user.
    """
    if not is_storable_id(document_id):
        raise DocumentNotFound()
    principals = principals_for(user)
    if not principals:
        raise DocumentNotFound()
    document = (
        Document.objects.select_related("source")
        .filter(pk=document_id, access__principal__in=principals)
        .distinct()
        .first()
    )
    if document is None:
        raise DocumentNotFound()
    return document


def source_visible_list(*, user) -> QuerySet[Source]:
    """Sources holding at least one document the user may see, by key.

    Used to validate and describe the ``source`` filter; a source whose every document is hidden
    from the user is left out so its name is not disclosed either.
    """
    principals = principals_for(user)
    if not principals:
        return Source.objects.none()
    visible = DocumentAccess.objects.filter(principal__in=principals).values("document__source_id")
    return Source.objects.filter(pk__in=visible).order_by("key")


def place_visible_values(*, user, values: Iterable[str]) -> set[str]:
    """The place values (``<source key>:<place key>``) among ``values`` holding at least one
    document the user may see.

    Used to validate the ``place`` filter: a place whose every document is hidden from the user is
    as unknown as one that does not exist, so its name is not confirmed either.
    """
    principals = principals_for(user)
    wanted = {value: parts for value in set(values) if (parts := place_split(value)) is not None}
    if not principals or not wanted:
        return set()
    named = Q()
    for source_key, place_key in wanted.values():
        named |= Q(document__source__key=source_key, document__place_key=place_key)
    found = (
        DocumentAccess.objects.filter(named, principal__in=principals)
        .values_list("document__source__key", "document__place_key")
        .distinct()
    )
    return {place_value(source_key, place_key) for source_key, place_key in found} & set(wanted)


@dataclass(frozen=True)
class IndexStatus:
    generations: list[GenerationInfo]
    runs: list[ReembedRun]  # queued and running ones, then the latest finished ones
    # KBSEARCH_EMBED_PRECISION, and what each encoder loaded in this process chose and why
    # ("<model> (<precision>)" -> PrecisionChoice); a new generation gets the configured model's.
    precision_setting: str = "auto"
    precisions: dict | None = None

    @property
    def serving(self) -> GenerationInfo | None:
        return next((generation for generation in self.generations if generation.serving), None)


def index_status(*, index: BaseIndexBackend | None = None) -> IndexStatus:
    """The generations kept (oldest first) and the re-embeds: every active one, the recent others."""
    index = index or get_index_backend()
    active = list(ReembedRun.objects.filter(status__in=ReembedRun.ACTIVE))
    recent = list(ReembedRun.objects.exclude(status__in=ReembedRun.ACTIVE)[:_RECENT_RUNS])
    return IndexStatus(
        generations=index.generations(), runs=active + recent,
        precision_setting=settings.KBSEARCH_EMBED_PRECISION, precisions=loaded_precisions(),
    )
