"""An encoder whose geometry the test chooses, so ranking assertions follow from the vectors.

The tiny test model places texts arbitrarily: an assertion that a document is "nearest" to a query
under it holds by accident, and a rebuilt tiny model may break it. ``KeywordEncoder`` gives each
keyword of the test its own axis; a text's vector counts the keyword's occurrences (substrings,
case-folded, so Chinese or Korean keywords work without a segmenter) and is normalised. A text with
no keyword points along one extra axis, orthogonal to every keyword. So the cosine between a query
and a passage is known in advance: ``KeywordEncoder(["vpn", "gateway"])`` puts "VPN gateway" at 45
degrees between the two axes, nearest to a passage that has both words once.

It offers what ingest, search and evaluation use of ``embeddings.encoder.Encoder``.
"""
import hashlib
import re
from collections.abc import Sequence

import numpy as np

from kbsearch.index.base import IndexMetadata
from kbsearch.text.analysis import ANALYZER_VERSION

_TOKEN_RE = re.compile(r"\w+|[^\w\s]")


class KeywordEncoder:
    def __init__(self, keywords: Sequence[str]) -> None:
        self.keywords = [keyword.casefold() for keyword in keywords]
        if len(set(self.keywords)) != len(self.keywords) or not all(self.keywords):
            raise ValueError(f"keywords must be distinct and non-empty: {keywords!r}")
        self.dimension = len(self.keywords) + 1
        self.model_name = "keyword-encoder"
        self.max_seq_length = 512
        # Another keyword list is another geometry: another model version.
        self.index_metadata = IndexMetadata(
            model_id=self.model_name,
            model_version=hashlib.sha256("\n".join(self.keywords).encode()).hexdigest()[:16],
            dimension=self.dimension,
            analyzer_version=ANALYZER_VERSION,
        )

    def vector(self, text: str) -> np.ndarray:
        folded = text.casefold()
        counts = np.array([folded.count(keyword) for keyword in self.keywords] + [0], dtype=np.float32)
        if not counts.any():
            counts[-1] = 1.0
        return counts / np.linalg.norm(counts)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts)

    def encode_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts)

    def count_tokens(self, text: str) -> int:
        # Words and punctuation marks, so chunking has a budget to work with; CJK runs count once.
        return len(_TOKEN_RE.findall(text))

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([self.vector(text) for text in texts])
