"""A disk cache of embeddings keyed by model and text, so repeated evaluations embed once."""
import hashlib
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np


class EmbeddingCache:
    def __init__(self, path: Path, model_key: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.model_key = model_key
        self._conn = sqlite3.connect(path)
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS vectors (model TEXT, kind TEXT, digest TEXT, vector BLOB, "
            "PRIMARY KEY (model, kind, digest)) WITHOUT ROWID"
        )

    def close(self) -> None:
        self._conn.close()

    def embed(
        self, kind: str, texts: Sequence[str], encode: Callable[[list[str]], np.ndarray],
        on_progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """Vectors for ``texts``, encoding only those not cached yet; ``on_progress(done, total)``
        counts the texts encoded of those missing, after each batch."""
        digests = [hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest() for text in texts]
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(digests), 500):
            batch = digests[start : start + 500]
            marks = ",".join("?" * len(batch))
            for digest, blob in self._conn.execute(
                f"SELECT digest, vector FROM vectors WHERE model = ? AND kind = ? AND digest IN ({marks})",
                [self.model_key, kind, *batch],
            ):
                found[digest] = np.frombuffer(blob, dtype=np.float32)
        missing = list(dict.fromkeys(d for d in digests if d not in found))
        if missing:
            text_of = dict(zip(digests, texts))
            step = 256
            for start in range(0, len(missing), step):
                batch = missing[start : start + step]
                vectors = encode([text_of[d] for d in batch])
                with self._conn:
                    self._conn.executemany(
                        "INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?)",
                        [(self.model_key, kind, d, np.asarray(v, dtype=np.float32).tobytes()) for d, v in zip(batch, vectors)],
                    )
                found.update(zip(batch, (np.asarray(v, dtype=np.float32) for v in vectors)))
                if on_progress is not None:
                    on_progress(start + len(batch), len(missing))
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([found[d] for d in digests])
