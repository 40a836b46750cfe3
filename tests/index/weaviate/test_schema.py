"""The collection a generation creates: the JSON body the real client would POST to /v1/schema."""
import pytest

from kbsearch.index.base import IndexBackendError
from kbsearch.index.weaviate import schema
from tests.index.weaviate.conftest import METADATA


def _properties(body):
    return {prop["name"]: prop for prop in body["properties"]}


def test_first_generation_is_a_collection_behind_the_alias(backend, server):
    assert server.calls == [("create", "KbTest_g1"), ("alias_create", "KbTest", "KbTest_g1")]
    assert server.aliases == {"KbTest": "KbTest_g1"}


def test_terms_are_whitespace_tokenized_with_stock_bm25_and_no_stopwords(backend, server):
    body = server.store["KbTest_g1"].body
    terms = _properties(body)["terms"]
    assert (terms["dataType"], terms["tokenization"], terms["indexSearchable"]) == (["text"], "whitespace", True)
    assert body["invertedIndexConfig"]["bm25"] == {"k1": 1.2, "b": 0.75}
    assert body["invertedIndexConfig"]["stopwords"] == {"preset": "none"}


def test_principals_are_exact_values_never_words(backend, server):
    properties = _properties(server.store["KbTest_g1"].body)
    principals = properties["principals"]
    assert (principals["dataType"], principals["tokenization"], principals["indexFilterable"]) == (["text[]"], "field", True)
    for name in ("source_key", "language", "place"):
        assert (properties[name]["dataType"], properties[name]["tokenization"]) == (["text"], "field")
        assert properties[name]["indexFilterable"] and not properties[name]["indexSearchable"]


def test_ids_and_dates_are_filterable(backend, server):
    properties = _properties(server.store["KbTest_g1"].body)
    assert properties["document_id"]["dataType"] == ["int"] and properties["document_id"]["indexFilterable"]
    assert properties["chunk_id"]["dataType"] == ["int"] and properties["chunk_id"]["indexRangeFilters"]
    assert properties["updated_at"]["dataType"] == ["date"] and properties["updated_at"]["indexRangeFilters"]
    assert set(properties) == {
        "terms", "principals", "source_key", "language", "place", "document_id", "chunk_id", "updated_at",
    }


def test_a_generation_created_before_places_gets_the_property_before_any_write(server):
    from kbsearch.index.weaviate import WeaviateIndexBackend

    old = WeaviateIndexBackend(collection="KbTest", client=server, sleep=lambda seconds: None)
    old.ensure_index(metadata=METADATA)
    body = server.store["KbTest_g1"].body
    body["properties"] = [prop for prop in body["properties"] if prop["name"] != "place"]  # as an older version made it
    upgraded = WeaviateIndexBackend(collection="KbTest", client=server, sleep=lambda seconds: None)
    upgraded.ensure_index(metadata=METADATA)
    upgraded.ensure_index(metadata=METADATA)  # checked once per backend object
    assert [call for call in server.calls if call[0] == "add_property"] == [("add_property", "KbTest_g1", "place")]
    place = _properties(body)["place"]
    assert (place["dataType"], place["tokenization"], place["indexFilterable"]) == (["text"], "field", True)


def test_one_self_provided_cosine_vector(backend, server):
    vectors = server.store["KbTest_g1"].body["vectorConfig"]
    assert list(vectors) == ["chunk"]
    assert vectors["chunk"]["vectorizer"] == {"none": {}}
    assert vectors["chunk"]["vectorIndexConfig"]["distance"] == "cosine"


def test_metadata_round_trips_through_the_description(backend, server):
    record = schema.parse_description("KbTest_g1", 1, server.store["KbTest_g1"].description)
    assert (record.metadata, record.state) == (METADATA, schema.READY)
    assert backend.serving_metadata() == METADATA


def test_a_generation_named_collection_without_metadata_is_refused(backend, server):
    server.collections.create(name="KbTest_g7", description="someone else's")
    with pytest.raises(IndexBackendError, match="no generation metadata"):
        backend.generations()


def test_a_plain_collection_named_like_the_alias_is_refused(server):
    from kbsearch.index.weaviate import WeaviateIndexBackend

    server.collections.create(name="Legacy")
    with pytest.raises(IndexBackendError, match="needs as the alias"):
        WeaviateIndexBackend(collection="Legacy", client=server).ensure_index(metadata=METADATA)


@pytest.mark.parametrize("name", ["kbsearch", "Kb-Search", "", "Kb Search"])
def test_invalid_collection_names_are_refused(name):
    with pytest.raises(IndexBackendError, match="invalid"):
        schema.check_alias_name(name)
