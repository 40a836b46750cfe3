"""The Weaviate index backend (production): see ``backend`` for the contract on Weaviate,
``schema`` for the collection per generation, ``generations`` for builds and switches,
``filters`` for permission filtering and ``batching`` for writes."""
from kbsearch.index.weaviate.backend import WeaviateIndexBackend

__all__ = ["WeaviateIndexBackend"]
