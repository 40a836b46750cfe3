"""An in-memory stand-in for the parts of ``weaviate.WeaviateClient`` the backend calls.

It records every schema and alias call in order (``calls``), keeps the JSON body the real client
would POST for each ``collections.create`` (built with the client's own ``_CollectionConfigCreate``),
adds properties (``config.add_property``, with the JSON the client would send), stores objects,
evaluates the real ``Filter`` objects the backend builds (ContainsAny, Equal,
GreaterThan, And) and, like a server, caps one ``delete_many`` at ``delete_cap`` objects. Search
legs (``bm25``, ``near_vector``) only record their arguments and answer with ``search_results``.
"""
from dataclasses import dataclass, field
from types import SimpleNamespace

from weaviate.collections.classes.batch import DeleteManyReturn, ErrorObject
from weaviate.collections.classes.config import _CollectionConfigCreate
from weaviate.collections.classes.filters import _FilterAnd, _FilterValue, _Operator


def matches(where, properties: dict) -> bool:
    if where is None:
        return True
    if isinstance(where, _FilterAnd):
        return all(matches(part, properties) for part in where.filters)
    assert isinstance(where, _FilterValue), f"unsupported filter {where!r}"
    value = properties.get(where.target)
    if where.operator == _Operator.CONTAINS_ANY:
        held = value if isinstance(value, list) else [value]
        return any(item in where.value for item in held)
    if where.operator == _Operator.EQUAL:
        return value == where.value
    if where.operator == _Operator.GREATER_THAN:
        return value is not None and value > where.value
    raise AssertionError(f"unsupported operator {where.operator}")


@dataclass
class StoredObject:
    uuid: str
    properties: dict
    vector: dict | None

    @property
    def metadata(self):
        return SimpleNamespace(score=None, distance=None)


class FakeData:
    def __init__(self, collection: "FakeCollection") -> None:
        self.collection = collection

    def insert_many(self, objects):
        server = self.collection.server
        server.insert_calls.append((self.collection.name, list(objects)))
        errors = {}
        for index, obj in enumerate(objects):
            reason = server.fail_next.pop(obj.properties.get("chunk_id"), None)
            if reason is not None:
                errors[index] = ErrorObject(message=reason, object_=None, original_uuid=obj.uuid)
                continue
            self.collection.objects[str(obj.uuid)] = StoredObject(str(obj.uuid), dict(obj.properties), obj.vector)
        return SimpleNamespace(errors=errors, has_errors=bool(errors))

    def delete_many(self, where, **_):
        server = self.collection.server
        server.delete_calls.append((self.collection.name, where))
        hit = [uuid for uuid, obj in self.collection.objects.items() if matches(where, obj.properties)]
        hit = hit[: server.delete_cap]
        for uuid in hit:
            del self.collection.objects[uuid]
        return DeleteManyReturn(failed=0, matches=len(hit), objects=None, successful=len(hit))


class FakeQuery:
    def __init__(self, collection: "FakeCollection") -> None:
        self.collection = collection

    def fetch_objects(self, *, filters=None, limit=None, sort=None, include_vector=False, return_properties=None):
        found = [obj for obj in self.collection.objects.values() if matches(filters, obj.properties)]
        if sort is not None:
            found.sort(key=lambda obj: obj.properties[sort.sorts[0].prop])
        return SimpleNamespace(objects=[
            SimpleNamespace(uuid=obj.uuid, properties=dict(obj.properties),
                            vector=obj.vector if include_vector else {})
            for obj in found[:limit]
        ])

    def bm25(self, **arguments):
        self.collection.server.search_calls.append(("bm25", self.collection.name, arguments))
        return SimpleNamespace(objects=self.collection.server.search_results)

    def near_vector(self, **arguments):
        self.collection.server.search_calls.append(("near_vector", self.collection.name, arguments))
        return SimpleNamespace(objects=self.collection.server.search_results)


class FakeConfig:
    def __init__(self, collection: "FakeCollection") -> None:
        self.collection = collection

    def update(self, *, description=None):
        self.collection.server.calls.append(("update_description", self.collection.name))
        self.collection.description = description

    def get(self):
        return SimpleNamespace(properties=[SimpleNamespace(name=prop["name"]) for prop in self.collection.body["properties"]])

    def add_property(self, prop):
        self.collection.server.calls.append(("add_property", self.collection.name, prop.name))
        self.collection.body["properties"].append(prop._to_dict())


class FakeAggregate:
    def __init__(self, collection: "FakeCollection") -> None:
        self.collection = collection

    def over_all(self, *, total_count=False):
        return SimpleNamespace(total_count=len(self.collection.objects))


class FakeCollection:
    def __init__(self, server: "FakeWeaviate", name: str, description: str | None, body: dict) -> None:
        self.server, self.name, self.description, self.body = server, name, description, body
        self.objects: dict[str, StoredObject] = {}
        self.data, self.query = FakeData(self), FakeQuery(self)
        self.config, self.aggregate = FakeConfig(self), FakeAggregate(self)

    def iterator(self, *, return_properties=None, cache_size=None):
        yield from sorted(self.objects.values(), key=lambda obj: obj.uuid)


class FakeCollections:
    def __init__(self, server: "FakeWeaviate") -> None:
        self.server = server

    def create(self, **arguments):
        body = _CollectionConfigCreate(**arguments)._to_dict()  # the JSON the real client POSTs
        name = arguments["name"]
        assert name not in self.server.store, f"collection {name} exists"
        self.server.calls.append(("create", name))
        self.server.store[name] = FakeCollection(self.server, name, arguments.get("description"), body)
        return self.server.store[name]

    def list_all(self, simple=True):
        return {name: SimpleNamespace(description=c.description) for name, c in self.server.store.items()}

    def exists(self, name):
        return name in self.server.store

    def use(self, name):
        target = self.server.aliases.get(name, name)
        if target not in self.server.store:
            raise AssertionError(f"no collection or alias {name}")
        return self.server.store[target]

    def delete(self, name):
        self.server.calls.append(("delete", name))
        assert name not in self.server.aliases.values(), "Weaviate refuses to delete an aliased collection"
        self.server.store.pop(name, None)


class FakeAlias:
    def __init__(self, server: "FakeWeaviate") -> None:
        self.server = server

    def get(self, *, alias_name):
        target = self.server.aliases.get(alias_name)
        return SimpleNamespace(alias=alias_name, collection=target) if target else None

    def create(self, *, alias_name, target_collection):
        assert alias_name not in self.server.aliases
        self.server.calls.append(("alias_create", alias_name, target_collection))
        self.server.aliases[alias_name] = target_collection

    def delete(self, *, alias_name):
        self.server.calls.append(("alias_delete", alias_name))
        return self.server.aliases.pop(alias_name, None) is not None

    def update(self, *, alias_name, new_target_collection):
        self.server.calls.append(("alias_update", alias_name, new_target_collection))
        if alias_name not in self.server.aliases:
            return False
        self.server.aliases[alias_name] = new_target_collection
        return True


@dataclass
class FakeWeaviate:
    delete_cap: int = 10_000
    store: dict = field(default_factory=dict)
    aliases: dict = field(default_factory=dict)
    calls: list = field(default_factory=list)
    insert_calls: list = field(default_factory=list)
    delete_calls: list = field(default_factory=list)
    search_calls: list = field(default_factory=list)
    search_results: list = field(default_factory=list)
    fail_next: dict = field(default_factory=dict)  # chunk id -> error message for its next insert
    closed: bool = False

    def __post_init__(self) -> None:
        self.collections = FakeCollections(self)
        self.alias = FakeAlias(self)

    def close(self) -> None:
        self.closed = True
