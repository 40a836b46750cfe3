"""Generations on Weaviate: collections behind an alias, their metadata, and the build protocol.

A build (``WeaviateIndexBuild``) writes a new collection while the alias keeps serving the old
one. Writes reaching the serving generation meanwhile (other processes included) first log their
document ids in the change log collection (``<alias>_changes``, tagged with the build's number;
writers see the build in the schema, state ``building``). The switch then:

1. replays the logged documents into the new generation through ``chunks_for_documents`` (which
   embeds with the new model), until a pass finds nothing new;
2. marks the generation ``ready`` and moves the alias (one atomic server-side update: every
   process's next search uses the new generation, nothing to restart);
3. replays once more, for writes logged between the last pass and the alias update (they landed
   in the old generation), and clears the log;
4. drops generations older than the replaced one, which is kept for one rollback.

A writer that resolved the old generation just before the alias moved re-checks the alias after
writing (``WeaviateIndexBackend``), so its change is never left only in the old generation.
"""
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from weaviate.classes.data import DataObject
from weaviate.classes.query import Filter, Sort
from weaviate.util import generate_uuid5

from kbsearch.index.base import (
    BaseIndexBuild,
    BatchResult,
    ChunksForDocuments,
    IndexBackendError,
    IndexChunk,
    IndexGeneration,
    IndexMetadata,
)
from kbsearch.index.vectors import split_valid
from kbsearch.index.weaviate import schema
from kbsearch.index.weaviate.batching import write_chunks
from kbsearch.index.weaviate.schema import BUILDING, READY, GenerationRecord

LOG_PAGE = 1000
# Replay passes before the alias moves; each pass handles what was logged during the previous one.
MAX_REPLAY_PASSES = 10


@dataclass(frozen=True)
class CatalogState:
    """One read of the schema and the alias."""

    records: dict[int, GenerationRecord] = field(default_factory=dict)
    serving: int | None = None

    @property
    def serving_record(self) -> GenerationRecord | None:
        return self.records.get(self.serving) if self.serving is not None else None

    @property
    def building(self) -> GenerationRecord | None:
        return next((r for n, r in sorted(self.records.items()) if r.state == BUILDING), None)


class GenerationCatalog:
    """Reads and changes the generations of one alias."""

    def __init__(self, client, alias: str) -> None:
        self.client = client
        self.alias = schema.check_alias_name(alias)

    def read(self) -> CatalogState:
        configs = self.client.collections.list_all(simple=True)
        if self.alias in configs:
            raise IndexBackendError(
                f"Weaviate has a collection named {self.alias}, which kbsearch needs as the alias of its "
                "generations; rename it or choose another KBSEARCH_WEAVIATE_COLLECTION"
            )
        records = {}
        for name, config in configs.items():
            number = schema.generation_number(self.alias, name)
            if number is not None:
                records[number] = schema.parse_description(name, number, config.description)
        target = self.client.alias.get(alias_name=self.alias)
        serving = schema.generation_number(self.alias, target.collection) if target is not None else None
        if target is not None and serving not in records:
            raise IndexBackendError(f"Weaviate alias {self.alias} points at {target.collection}, not a kbsearch generation")
        return CatalogState(records=records, serving=serving)

    def collection(self, number: int):
        return self.client.collections.use(schema.generation_collection(self.alias, number))

    def create(self, *, number: int, metadata: IndexMetadata, state: str) -> GenerationRecord:
        arguments = schema.generation_create_arguments(alias=self.alias, number=number, metadata=metadata, state=state)
        self.client.collections.create(**arguments)
        return schema.parse_description(arguments["name"], number, arguments["description"])

    def set_state(self, record: GenerationRecord, state: str) -> GenerationRecord:
        description = schema.describe(
            number=record.number, metadata=record.metadata, state=state,
            created_at=record.created_at or datetime.now(UTC),
        )
        self.collection(record.number).config.update(description=description)
        return replace(record, state=state)

    def point_alias(self, number: int, *, exists: bool) -> None:
        target = schema.generation_collection(self.alias, number)
        if not exists:
            self.client.alias.create(alias_name=self.alias, target_collection=target)
        elif not self.client.alias.update(alias_name=self.alias, new_target_collection=target):
            raise IndexBackendError(f"Weaviate alias {self.alias} vanished while switching to {target}")

    def drop(self, number: int) -> None:
        self.client.collections.delete(schema.generation_collection(self.alias, number))

    def add_missing_properties(self, number: int) -> list[str]:
        """Add the chunk properties a generation created by an older version lacks; returns their names."""
        collection = self.collection(number)
        present = {prop.name for prop in collection.config.get().properties}
        added = []
        for prop in schema.chunk_properties():
            if prop.name not in present:
                collection.config.add_property(prop)
                added.append(prop.name)
        return added

    def chunk_count(self, number: int) -> int:
        return int(self.collection(number).aggregate.over_all(total_count=True).total_count or 0)

    # --- the change log -------------------------------------------------------------------------

    def _changes(self):
        name = schema.changes_collection(self.alias)
        if not self.client.collections.exists(name):
            self.client.collections.create(**schema.changes_create_arguments(self.alias))
        return self.client.collections.use(name)

    def log_documents(self, build: int, document_ids: Sequence[int]) -> None:
        objects = [
            DataObject(properties={"generation": build, "document_id": document_id},
                       uuid=generate_uuid5(f"{build}:{document_id}", namespace="kbsearch-change:"))
            for document_id in sorted(set(document_ids))
        ]
        result = self._changes().data.insert_many(objects)
        if result.errors:
            first = next(iter(result.errors.values()))
            # Failing the write is the safe outcome: unlogged, the change could miss the new generation.
            raise IndexBackendError(f"could not log changed documents for build {build}: {first.message}")

    def logged_documents(self, build: int) -> set[int]:
        name = schema.changes_collection(self.alias)
        if not self.client.collections.exists(name):
            return set()  # nothing was ever logged (only a write during a build creates the log)
        changes, found, last = self.client.collections.use(name), set(), None
        while True:
            where = Filter.by_property("generation").equal(build)
            if last is not None:
                where = where & Filter.by_property("document_id").greater_than(last)
            page = changes.query.fetch_objects(
                filters=where, limit=LOG_PAGE, sort=Sort.by_property("document_id"),
                return_properties=["document_id"],
            ).objects
            found.update(int(obj.properties["document_id"]) for obj in page)
            if len(page) < LOG_PAGE:
                return found
            last = int(page[-1].properties["document_id"])

    def clear_log(self, build: int) -> None:
        name = schema.changes_collection(self.alias)
        if self.client.collections.exists(name):
            changes = self.client.collections.use(name)
            while changes.data.delete_many(where=Filter.by_property("generation").equal(build)).matches:
                pass


    def clear_log_collection(self) -> None:
        name = schema.changes_collection(self.alias)
        if self.client.collections.exists(name):
            self.client.collections.delete(name)


class WeaviateIndexBuild(BaseIndexBuild):
    """A new generation being filled; see the module docstring for the switch."""

    def __init__(self, backend, record: GenerationRecord) -> None:
        self.backend = backend
        self.catalog: GenerationCatalog = backend.catalog
        self.record = record
        self.number = record.number
        self.metadata = record.metadata
        self._finished = False

    def write(self, chunks: Sequence[IndexChunk]) -> BatchResult:
        accepted, refused = split_valid(chunks, self.metadata.dimension)  # never sent
        result = write_chunks(
            self.catalog.collection(self.number), accepted, page_size=self.backend.page_size, sleep=self.backend.sleep,
        )
        return BatchResult(written=result.written, failures=tuple(refused) + result.failures)

    def switch(self, *, chunks_for_documents: ChunksForDocuments) -> IndexGeneration:
        if self._finished:
            raise IndexBackendError(f"build of generation {self.number} already finished")
        replayed: set[int] = set()
        for _ in range(MAX_REPLAY_PASSES):
            fresh = self.catalog.logged_documents(self.number) - replayed
            if not fresh:
                break
            self._replay(sorted(fresh), chunks_for_documents)
            replayed |= fresh
        state = self.catalog.read()
        self.record = self.catalog.set_state(self.record, READY)
        self.catalog.point_alias(self.number, exists=state.serving is not None)
        # Writes logged before the alias moved may have landed only in the old generation.
        late = self.catalog.logged_documents(self.number) - replayed
        if late:
            self._replay(sorted(late), chunks_for_documents)
        self.catalog.clear_log(self.number)
        for number in sorted(state.records):
            if number < (state.serving or 0) and number != self.number:
                self.catalog.drop(number)
        self._finished = True
        return IndexGeneration(number=self.number, chunk_count=self.catalog.chunk_count(self.number))

    def keep(self, *, chunks_for_documents: ChunksForDocuments) -> IndexGeneration:
        """Replay what was logged so far, then mark the generation ``ready`` without moving the
        alias: writers keep logging for it (as for every generation that does not serve), and
        ``generation_switch`` replays the rest. The log is kept for that."""
        if self._finished:
            raise IndexBackendError(f"build of generation {self.number} already finished")
        replayed: set[int] = set()
        for _ in range(MAX_REPLAY_PASSES):
            fresh = self.catalog.logged_documents(self.number) - replayed
            if not fresh:
                break
            self._replay(sorted(fresh), chunks_for_documents)
            replayed |= fresh
        self.record = self.catalog.set_state(self.record, READY)
        self._finished = True
        return IndexGeneration(number=self.number, chunk_count=self.catalog.chunk_count(self.number))

    def _replay(self, document_ids: list[int], chunks_for_documents: ChunksForDocuments) -> None:
        for start in range(0, len(document_ids), LOG_PAGE):
            batch = document_ids[start:start + LOG_PAGE]
            chunks = list(chunks_for_documents(batch))
            self.write(chunks).raise_for_failures()
            self.backend.delete_stale_chunks(
                self.catalog.collection(self.number), batch, keep={c.chunk_id for c in chunks}
            )

    def abort(self) -> None:
        if self._finished:
            return
        self._finished = True
        self.catalog.drop(self.number)
        self.catalog.clear_log(self.number)
