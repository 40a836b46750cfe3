"""What a Weaviate generation is: its collection name, properties, index settings and metadata.

Every generation is its own collection, ``<alias>_g<number>`` (``KbsearchChunk_g3``), and the
configured collection name is a collection *alias* (Weaviate 1.32+) pointing at the serving one.
Searches go through the alias, so a switch is one atomic ``PUT /v1/aliases/<alias>``.

Settings chosen so Weaviate ranks like the embedded index, with a stock server (no server
environment variable needed):

- ``terms`` holds ``kbsearch.text.analysis`` terms joined by single spaces and uses ``whitespace``
  tokenization, so Weaviate's tokens are exactly our terms (already casefolded, CJK already in
  bigrams: Weaviate's own ``word`` tokenizer would split differently and drop CJK).
- BM25 ``k1=1.2``, ``b=0.75`` (``kbsearch.index.base``) are written into the collection, not left
  to defaults, and the stopword preset is ``none``: the server's default ``en`` preset would drop
  ``the``/``a``... from queries while the embedded index scores them.
- ``principals`` is ``TEXT_ARRAY`` with ``field`` tokenization: each principal is one token, so
  ``contains_any(["group:hr"])`` never matches ``user:hr`` (``word`` tokenization would index both
  as ``hr``).
- ``source_key``, ``language`` and ``place`` are ``field``-tokenized too (exact values: a place
  like ``wiki:HR Team`` is one token); ``document_id``, ``chunk_id`` (INT) and ``updated_at``
  (DATE, range-indexed) are filterable. ``place`` came later: ``ensure_index`` adds it to a
  generation created before it (``add_property``), whose chunks then have no place until rewritten.
- One self-provided named vector (``chunk``, vectorizer none, HNSW, cosine distance, ACORN filter
  strategy so narrow permission filters do not degrade the graph walk). One vector per collection
  is enough because a new model gets a new generation, i.e. a new collection.

Generation metadata (model id and version, dimension, analyzer version, precision, state, creation
time) is JSON in the collection's description, so it lives and dies with the collection it
describes and one schema read returns every generation's metadata.
"""
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from weaviate.classes.config import (
    Configure,
    DataType,
    Property,
    StopwordsPreset,
    Tokenization,
    VectorDistances,
)
from weaviate.collections.classes.config_vector_index import VectorFilterStrategy

from kbsearch.index.base import BM25_B, BM25_K1, IndexBackendError, IndexMetadata

VECTOR_NAME = "chunk"
TERMS = "terms"
PLACE = "place"
RETURNED_PROPERTIES = ["chunk_id", "document_id", "language"]
# Everything a chunk object holds but its vector: what a rewrite reads back.
STORED_PROPERTIES = [TERMS, "principals", "source_key", "language", "document_id", "chunk_id", "updated_at", PLACE]
# A collection name Weaviate accepts (GraphQL class name rules).
_NAME = re.compile(r"^[A-Z][_0-9A-Za-z]*$")
_DESCRIPTION_PREFIX = "kbsearch index generation "

# States a generation goes through: written by a build, then complete (may serve).
BUILDING = "building"
READY = "ready"


@dataclass(frozen=True)
class GenerationRecord:
    """A generation as its collection describes it."""

    number: int
    collection: str
    metadata: IndexMetadata
    state: str
    created_at: datetime | None


def check_alias_name(alias: str) -> str:
    if not _NAME.match(alias):
        raise IndexBackendError(
            f"Weaviate collection name {alias!r} is invalid: it must start with a capital letter and "
            "hold only letters, digits and underscores"
        )
    return alias


def generation_collection(alias: str, number: int) -> str:
    return f"{alias}_g{number}"


def changes_collection(alias: str) -> str:
    """Where writers log the documents they changed while a build runs (replayed at the switch)."""
    return f"{alias}_changes"


def generation_number(alias: str, collection: str) -> int | None:
    """The generation number of ``collection`` if it is one of ``alias``'s generations."""
    match = re.fullmatch(re.escape(alias) + r"_g(\d+)", collection)
    return int(match.group(1)) if match else None


def describe(*, number: int, metadata: IndexMetadata, state: str, created_at: datetime) -> str:
    payload = {
        "generation": number,
        "model_id": metadata.model_id,
        "model_version": metadata.model_version,
        "dimension": metadata.dimension,
        "analyzer_version": metadata.analyzer_version,
        "precision": metadata.precision,
        "state": state,
        "created_at": created_at.isoformat(),
    }
    return _DESCRIPTION_PREFIX + json.dumps(payload, sort_keys=True)


def parse_description(collection: str, number: int, description: str | None) -> GenerationRecord:
    """Read a generation's record; a collection named like one but not described is refused."""
    if not description or not description.startswith(_DESCRIPTION_PREFIX):
        raise IndexBackendError(
            f"Weaviate collection {collection} is named like a kbsearch generation but has no generation "
            "metadata in its description; rename or delete it"
        )
    try:
        payload = json.loads(description[len(_DESCRIPTION_PREFIX):])
        metadata = IndexMetadata(
            model_id=str(payload["model_id"]),
            model_version=str(payload["model_version"]),
            dimension=int(payload["dimension"]),
            analyzer_version=int(payload["analyzer_version"]),
            # Generations described before precision was recorded were all built in float32.
            precision=str(payload.get("precision", "float32")),
        )
        created = payload.get("created_at")
        return GenerationRecord(
            number=number,
            collection=collection,
            metadata=metadata,
            state=str(payload["state"]),
            created_at=datetime.fromisoformat(created) if created else None,
        )
    except (ValueError, KeyError, TypeError) as error:
        raise IndexBackendError(f"Weaviate collection {collection} has unreadable generation metadata: {error}") from error


def chunk_properties() -> list[Property]:
    """The properties of a generation's chunk objects (see the module docstring for why each)."""
    exact_text = {"tokenization": Tokenization.FIELD, "index_filterable": True, "index_searchable": False}
    return [
        Property(
            name=TERMS, data_type=DataType.TEXT, tokenization=Tokenization.WHITESPACE,
            index_searchable=True, index_filterable=False,
        ),
        Property(name="principals", data_type=DataType.TEXT_ARRAY, **exact_text),
        Property(name="source_key", data_type=DataType.TEXT, **exact_text),
        Property(name="language", data_type=DataType.TEXT, **exact_text),
        Property(name=PLACE, data_type=DataType.TEXT, **exact_text),
        Property(name="document_id", data_type=DataType.INT, index_filterable=True, index_range_filters=False),
        Property(name="chunk_id", data_type=DataType.INT, index_filterable=True, index_range_filters=True),
        Property(name="updated_at", data_type=DataType.DATE, index_filterable=True, index_range_filters=True),
    ]


def generation_create_arguments(
    *, alias: str, number: int, metadata: IndexMetadata, state: str, created_at: datetime | None = None
) -> dict:
    """Keyword arguments of ``client.collections.create`` for one generation."""
    return {
        "name": generation_collection(alias, number),
        "description": describe(
            number=number, metadata=metadata, state=state, created_at=created_at or datetime.now(UTC)
        ),
        "properties": chunk_properties(),
        "inverted_index_config": Configure.inverted_index(
            bm25_k1=BM25_K1, bm25_b=BM25_B, stopwords_preset=StopwordsPreset.NONE,
            index_null_state=True,  # lets a filter find chunks without updated_at if ever needed
        ),
        "vector_config": Configure.Vectors.self_provided(
            name=VECTOR_NAME,
            vector_index_config=Configure.VectorIndex.hnsw(
                distance_metric=VectorDistances.COSINE, filter_strategy=VectorFilterStrategy.ACORN
            ),
        ),
    }


def changes_create_arguments(alias: str) -> dict:
    """The change log: one small object per (build, document) changed while a build runs."""
    return {
        "name": changes_collection(alias),
        "description": "kbsearch: documents written while a generation was being built",
        "properties": [
            Property(name="generation", data_type=DataType.INT, index_filterable=True),
            Property(name="document_id", data_type=DataType.INT, index_filterable=True, index_range_filters=True),
        ],
        "vector_config": Configure.Vectors.self_provided(),
    }
