"""An encoder wrapper that counts passages embedded, so tests can assert what was (not) re-embedded."""


class CountingEncoder:
    """The tiny encoder, counting how many passages it embeds."""

    def __init__(self, encoder) -> None:
        self.inner = encoder
        self.passages = 0
        self.dimension = encoder.dimension
        self.index_metadata = encoder.index_metadata
        self.count_tokens = encoder.count_tokens

    def encode_passages(self, texts):
        self.passages += len(texts)
        return self.inner.encode_passages(texts)

    def encode_queries(self, texts):
        return self.inner.encode_queries(texts)
