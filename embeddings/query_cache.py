"""A process-wide LRU cache of query vectors: enterprise queries repeat ("vpn", "holidays 2026").

Keyed by what decides a vector and nothing else:
  * the encoder's identity, ``(model_id, model_version, precision)``: ``model_version`` is the
    fingerprint of the loaded weights, so another model, a fine-tune replacing one in place or
    another precision never reads a vector it did not make. Every index generation records the
    same triple (``IndexMetadata``), so a search against another generation never reuses a vector;
  * the token ids the model is given (prompt prefix included, after truncation): the tokenizer's
    own normalisation (NFKC, runs of spaces) decides which texts are the same query, so ``"VPN
    setup"`` and ``"VPN  setup"`` share an entry exactly when the model cannot tell them apart.

Vectors are stored as read-only copies (``Encoder.encode_queries`` copies them into the array it
returns). ``KBSEARCH_QUERY_CACHE_SIZE`` entries (a 384-dimension vector is 1.5 KB) per process; 0
turns the cache off.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable

import numpy as np


class QueryVectorCache:
    """Least recently used vectors, up to ``max_entries``; safe to share between threads."""

    def __init__(self, max_entries: int) -> None:
        if max_entries < 0:
            raise ValueError(f"max_entries must be >= 0, got {max_entries}")
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> np.ndarray | None:
        with self._lock:
            vector = self._entries.get(key)
            if vector is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return vector

    def put(self, key: Hashable, vector: np.ndarray) -> None:
        if self.max_entries == 0:
            return
        stored = np.array(vector, dtype=np.float32, copy=True)
        stored.flags.writeable = False
        with self._lock:
            self._entries[key] = stored
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.hits = self.misses = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
