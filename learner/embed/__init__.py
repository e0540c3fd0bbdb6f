"""Embeddings of files or windows (one vector each, stored as parquet by the scorer's "embeddings" kind) and
the search index over them (exact NumPy, or an approximate HNSW index past a size threshold)."""
