"""The query encoding paths ``bench_encoder.py --queries`` compares: before issue 10, after it, and
(optional) the same model in ONNX Runtime or OpenVINO.

Each path encodes one query text to a float32 unit vector, as ``search_run`` asks for it.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from embeddings.encoder import QUERY_PREFIX, Encoder, model_kwargs_for
from embeddings.query_cache import QueryVectorCache


class QueryPath:
    label = ""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder  # tokenizes for every path, so all get the same token ids

    def encode(self, text: str) -> np.ndarray:
        raise NotImplementedError

    def set_threads(self, threads: int) -> None:
        """torch reads the process-wide count; other runtimes need telling."""

    def prime(self, texts: list[str]) -> None:
        """Called before the timed calls with the texts they will encode."""

    def features(self, text: str) -> dict[str, torch.Tensor]:
        return self.encoder._batch_features(self.encoder._token_ids([text], QUERY_PREFIX))


class BeforePath(QueryPath):
    """The code path before issue 10: the model as loaded (``nn.Linear``: MKL for float32), bfloat16
    by autocast (every weight cast on every call), through sentence-transformers' modules."""

    def __init__(self, encoder: Encoder, model, bfloat16: bool) -> None:
        super().__init__(encoder)
        self.model = model
        self.bfloat16 = bfloat16
        self.label = "before: " + ("bfloat16 (autocast)" if bfloat16 else "float32 (MKL)")

    def encode(self, text: str) -> np.ndarray:
        features = self.features(text)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bfloat16):
            output = self.model(features)["sentence_embedding"].to(torch.float32).numpy()[0]
        return output / max(float(np.linalg.norm(output)), 1e-12)


class AfterPath(QueryPath):
    """``Encoder.encode_queries`` as searches call it, with the encoder's query cache off."""

    def __init__(self, encoder: Encoder, label: str) -> None:
        super().__init__(encoder)
        self.label = label

    def encode(self, text: str) -> np.ndarray:
        return self.encoder.encode_queries([text])[0]


class CacheHitPath(AfterPath):
    """A query asked before: ``prime`` encodes every text once, the timed calls are cache hits."""

    def __init__(self, encoder: Encoder, label: str) -> None:
        super().__init__(encoder, label)
        self.hits = QueryVectorCache(1_000_000)

    def encode(self, text: str) -> np.ndarray:
        self.encoder._query_cache = self.hits
        try:
            return self.encoder.encode_queries([text])[0]
        finally:
            self.encoder._query_cache = None

    def prime(self, texts: list[str]) -> None:
        self.encoder._query_cache = self.hits
        try:
            self.encoder.encode_queries(texts)
        finally:
            self.encoder._query_cache = None


def before_paths(path: str) -> list[QueryPath]:
    from sentence_transformers import SentenceTransformer

    tokenizer_source = Encoder(path, precision="float32")
    model = SentenceTransformer(path, device="cpu", model_kwargs=model_kwargs_for(path)).eval()
    return [BeforePath(tokenizer_source, model, bfloat16=False), BeforePath(tokenizer_source, model, bfloat16=True)]


class ModelForwardPath(AfterPath):
    """The encoder's packed model through its own forward (transformers' modules), not the lean
    one: what a query cost after prepacking, before ``embeddings.query_forward``."""

    def encode(self, text: str) -> np.ndarray:
        return self.encoder._embed(self.encoder._token_ids([text], QUERY_PREFIX))[0]


def after_paths(path: str) -> list[QueryPath]:
    float32 = Encoder(path, precision="float32")
    automatic = Encoder(path, precision="auto")
    paths = []
    for encoder, name in ((float32, "float32"), (automatic, f"auto = {automatic.precision}")):
        paths.append(ModelForwardPath(encoder, f"after: {name}, model forward (oneDNN, packed)"))
        if encoder.lean_queries:
            paths.append(AfterPath(encoder, f"after: {name}, lean query forward"))
    paths.append(CacheHitPath(automatic, f"after: auto = {automatic.precision}, query cache hit"))
    return paths


class _MeanPooled(torch.nn.Module):
    """The transformer with e5's mean pooling and normalisation, for export."""

    def __init__(self, transformer) -> None:
        super().__init__()
        self.transformer = transformer

    def forward(self, input_ids, attention_mask):
        hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1)


class RuntimePath(QueryPath):
    """An exported copy of the float32 model run by ONNX Runtime or OpenVINO."""

    def __init__(self, encoder: Encoder, onnx_file: Path, runtime: str, precision: str) -> None:
        super().__init__(encoder)
        self.onnx_file, self.runtime, self.precision = onnx_file, runtime, precision
        self.label = f"{runtime} {precision}"
        self.set_threads(torch.get_num_threads())

    def set_threads(self, threads: int) -> None:
        if self.runtime == "onnxruntime":
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
            session = onnxruntime.InferenceSession(str(self.onnx_file), options, providers=["CPUExecutionProvider"])
            self._run = lambda feeds: session.run(None, feeds)[0]
        else:
            import openvino

            hint = {"float32": "f32", "bfloat16": "bf16"}[self.precision]
            compiled = openvino.Core().compile_model(str(self.onnx_file), "CPU", {
                "INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
            })
            request = compiled.create_infer_request()
            self._run = lambda feeds: request.infer(feeds)[0]

    def encode(self, text: str) -> np.ndarray:
        features = self.features(text)
        feeds = {"input_ids": features["input_ids"].numpy(), "attention_mask": features["attention_mask"].numpy()}
        return np.asarray(self._run(feeds), dtype=np.float32)[0]


def runtime_paths(path: str, runtimes: list[str]) -> list[QueryPath]:
    """ONNX export of the float32 model (once), then a path per importable runtime and precision."""
    from sentence_transformers import SentenceTransformer

    available = []
    for runtime in runtimes:
        try:
            __import__(runtime)
            available.append(runtime)
        except ImportError:
            print(f"{runtime} is not importable here: skipped")
    if not available:
        return []
    encoder = Encoder(path, precision="float32")
    transformer = SentenceTransformer(path, device="cpu", model_kwargs=model_kwargs_for(path))[0].auto_model.eval()
    folder = tempfile.mkdtemp(prefix="kbsearch-bench-onnx-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)  # 470 MB; sessions reopen it per thread count
    onnx_file = Path(folder) / "model.onnx"
    example = encoder._batch_features(encoder._token_ids(["example query"], QUERY_PREFIX))
    torch.onnx.export(
        _MeanPooled(transformer), (example["input_ids"], example["attention_mask"]), str(onnx_file),
        input_names=["input_ids", "attention_mask"], output_names=["embedding"], opset_version=17, dynamo=False,
        dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"}},
    )
    paths: list[QueryPath] = []
    if "onnxruntime" in available:
        paths.append(RuntimePath(encoder, onnx_file, "onnxruntime", "float32"))
    if "openvino" in available:
        paths += [RuntimePath(encoder, onnx_file, "openvino", precision) for precision in ("float32", "bfloat16")]
    return paths
