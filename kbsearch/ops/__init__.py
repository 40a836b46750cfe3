"""Operating kbsearch in production: health and readiness, Prometheus metrics, request ids and JSON logs.

A layer of its own between the documents app and ``access``/``embeddings``: connectors and search
record into its metrics, web and the root URLs/middleware serve it, and it reads only the index,
the encoder and the database connection (never documents or search), so anything above may use it.
"""
