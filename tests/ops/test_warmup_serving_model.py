"""The web warm-up loads the serving generation's encoder (its model and precision) and runs one
query through it; gunicorn's master does that on one PyTorch thread (it forks afterwards)."""
import torch

from embeddings.encoder import configure_torch_threads
from kbsearch.index.base import IndexMetadata
from kbsearch.ops.warmup import encoder_warmup
from kbsearch.text.analysis import ANALYZER_VERSION

SERVING = IndexMetadata("some-model", "v7", 32, ANALYZER_VERSION, precision="bfloat16")


class RecordingEncoder:
    def __init__(self, seen: dict) -> None:
        self.seen = seen

    def encode_queries(self, texts):
        self.seen["texts"] = list(texts)
        self.seen["threads"] = torch.get_num_threads()


def test_the_master_loads_the_serving_generations_encoder_on_one_thread(index_backend, monkeypatch):
    index_backend.ensure_index(metadata=SERVING)
    seen = {}

    def encoder_for(metadata):
        seen["metadata"] = metadata
        return RecordingEncoder(seen)

    monkeypatch.setattr("embeddings.loading.encoder_for", encoder_for)
    before = torch.get_num_threads()
    try:
        configure_torch_threads(2)
        encoder_warmup.load_now()
        assert torch.get_num_threads() == 2  # restored for whatever runs next
    finally:
        torch.set_num_threads(before)
    assert seen["metadata"] == SERVING and seen["threads"] == 1 and len(seen["texts"]) == 1
    assert encoder_warmup.status() == (True, None)


def test_without_an_index_the_configured_model_is_loaded(settings, tmp_path, monkeypatch):
    settings.KBSEARCH_INDEX = {"BACKEND": "kbsearch.index.embedded.EmbeddedIndexBackend",
                               "OPTIONS": {"path": str(tmp_path / "none" / "embedded.sqlite3")}}
    from kbsearch.index.registry import reset_index_backend

    reset_index_backend()
    seen = {}

    def encoder_for(metadata):
        seen["metadata"] = metadata
        return RecordingEncoder(seen)

    monkeypatch.setattr("embeddings.loading.encoder_for", encoder_for)
    try:
        encoder_warmup.load_now()
    finally:
        reset_index_backend()
    assert seen == {"metadata": None, "texts": ["warm-up query"], "threads": 1}
