"""What the index must hold for the database as it is: the expected ``indexed_documents`` answer."""
from kbsearch.documents.models import Chunk, Document, DocumentAccess
from kbsearch.documents.places import place_value
from kbsearch.index.base import IndexedDocument


def database_state() -> dict[int, IndexedDocument]:
    """Every document with chunks, with its chunk ids, access list and place."""
    access: dict[int, set[str]] = {}
    for document_id, principal in DocumentAccess.objects.values_list("document_id", "principal"):
        access.setdefault(document_id, set()).add(principal)
    chunks: dict[int, set[int]] = {}
    for chunk_id, document_id in Chunk.objects.values_list("pk", "document_id"):
        chunks.setdefault(document_id, set()).add(chunk_id)
    places = {
        document_id: place_value(source_key, place_key)
        for document_id, source_key, place_key in Document.objects.values_list("pk", "source__key", "place_key")
    }
    return {
        document_id: IndexedDocument(
            frozenset(chunk_ids), frozenset(access.get(document_id, ())), frozenset({places[document_id]})
        )
        for document_id, chunk_ids in chunks.items()
    }


def index_matches_database(index) -> bool:
    """Whether ``index`` holds exactly the database's documents, each with its chunks and access list."""
    documents = list(Document.objects.values_list("pk", flat=True))
    held = index.indexed_documents(documents)
    for document in Document.objects.prefetch_related("chunks", "access"):
        entry = held.get(document.pk)
        if entry is None or entry.chunk_ids != {chunk.pk for chunk in document.chunks.all()}:
            return False
        if entry.principals != {access.principal for access in document.access.all()}:
            return False
    return index.document_ids() == set(documents)
