"""The query vector cache: repeats skip the model, and no vector crosses models or precisions."""
from pathlib import Path

import numpy as np
import pytest

from embeddings.encoder import Encoder
from embeddings.query_cache import QueryVectorCache
from embeddings.tiny import build_tiny_model_dir


class ForwardCounter:
    """Counts the encoder's forwards: the model's (one per batch) and the lean one (one per query)."""

    def __init__(self, encoder: Encoder, monkeypatch) -> None:
        self.calls = 0
        monkeypatch.setattr(encoder._model, "forward", self._counted(encoder._model.forward))
        if encoder._query_forward is not None:
            monkeypatch.setattr(encoder, "_query_forward", self._counted(encoder._query_forward))

    def _counted(self, forward):
        def counted(*args, **kwargs):
            self.calls += 1
            return forward(*args, **kwargs)

        return counted


@pytest.fixture(scope="module")
def retrained_model_dir(tmp_path_factory) -> Path:
    """The tiny model with other weights at the same size: a fine-tune of it, say."""
    return build_tiny_model_dir(tmp_path_factory.mktemp("retrained") / "model", seed=77)


def test_a_repeated_query_is_served_from_the_cache_without_a_forward(tiny_model_dir: Path, tiny_encoder: Encoder,
                                                                     monkeypatch):
    cache = QueryVectorCache(100)
    encoder = Encoder(str(tiny_model_dir), query_cache=cache)
    forwards = ForwardCounter(encoder, monkeypatch)
    first = encoder.encode_queries(["vpn setup", "holiday calendar"])
    assert forwards.calls == 1 and len(cache) == 2
    again = encoder.encode_queries(["holiday calendar", "vpn setup", "new question"])
    assert forwards.calls == 2  # only "new question" was encoded
    assert np.array_equal(again[0], first[1]) and np.array_equal(again[1], first[0])
    np.testing.assert_allclose(again, tiny_encoder.encode_queries(["holiday calendar", "vpn setup", "new question"]),
                               atol=1e-6)
    again[0] += 1.0  # callers own what they get: the cached vector is unchanged
    assert np.array_equal(encoder.encode_queries(["holiday calendar"])[0], first[1])


def test_texts_the_tokenizer_cannot_tell_apart_share_an_entry(tiny_model_dir: Path):
    cache = QueryVectorCache(100)
    encoder = Encoder(str(tiny_model_dir), query_cache=cache)
    encoder.encode_queries(["vpn  setup"])
    encoder.encode_queries(["vpn setup"])  # the tokenizer collapses runs of spaces
    assert len(cache) == 1 and cache.hits == 1
    encoder.encode_queries(["VPN setup"])  # the model is cased: another query
    assert len(cache) == 2


def test_another_model_version_never_reuses_a_cached_vector(tiny_model_dir: Path, retrained_model_dir: Path):
    cache = QueryVectorCache(100)
    original = Encoder(str(tiny_model_dir), model_id="tiny", query_cache=cache)
    retrained = Encoder(str(retrained_model_dir), model_id="tiny", query_cache=cache)
    # Same model id and size, other weights: the generations they build differ in model_version only.
    assert original.index_metadata.model_version != retrained.index_metadata.model_version
    assert original.index_metadata.model_id == retrained.index_metadata.model_id
    mine = original.encode_queries(["vpn setup"])
    theirs = retrained.encode_queries(["vpn setup"])
    assert len(cache) == 2 and cache.hits == 0
    assert not np.allclose(mine, theirs)
    np.testing.assert_allclose(theirs, Encoder(str(retrained_model_dir)).encode_queries(["vpn setup"]), atol=1e-6)


def test_another_precision_never_reuses_a_cached_vector(tiny_model_dir: Path):
    cache = QueryVectorCache(100)
    float32 = Encoder(str(tiny_model_dir), precision="float32", query_cache=cache)
    bfloat16 = Encoder(str(tiny_model_dir), precision="bfloat16", query_cache=cache)
    first = float32.encode_queries(["vpn setup"])
    second = bfloat16.encode_queries(["vpn setup"])
    assert cache.hits == 0 and len(cache) == 2 and not np.array_equal(first, second)
    np.testing.assert_array_equal(second, Encoder(str(tiny_model_dir), precision="bfloat16").encode_queries(["vpn setup"]))


def test_the_cache_keeps_the_most_recently_used_and_size_zero_keeps_nothing():
    cache = QueryVectorCache(2)
    for key in ("a", "b"):
        cache.put(key, np.full(3, ord(key), dtype=np.float32))
    assert cache.get("a") is not None  # "a" is now the most recent
    cache.put("c", np.zeros(3, dtype=np.float32))
    assert cache.get("b") is None and cache.get("a") is not None and cache.get("c") is not None
    assert len(cache) == 2 and not cache.get("a").flags.writeable
    off = QueryVectorCache(0)
    off.put("a", np.zeros(3, dtype=np.float32))
    assert len(off) == 0 and off.get("a") is None
    with pytest.raises(ValueError):
        QueryVectorCache(-1)


def test_an_encoder_without_a_cache_encodes_every_time(tiny_model_dir: Path, monkeypatch):
    encoder = Encoder(str(tiny_model_dir))
    forwards = ForwardCounter(encoder, monkeypatch)
    encoder.encode_queries(["vpn setup"])
    encoder.encode_queries(["vpn setup"])
    assert forwards.calls == 2
