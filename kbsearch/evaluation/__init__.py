"""Relevance evaluation on BEIR-layout sets (``manage.py evaluate``): nDCG@10, MRR@10, Recall@k,
ranked by the same code the API uses, over a throwaway embedded index."""
