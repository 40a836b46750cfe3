"""Search core: text analysis, chunking, indexing and hybrid retrieval."""
