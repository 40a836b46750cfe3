"""Relevance evaluation on BEIR-layout sets (corpus.jsonl, queries.jsonl, qrels.tsv)."""
