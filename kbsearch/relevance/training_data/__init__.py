"""Training data for fine-tuning the embedding model: (query, positive passage, hard negatives) rows
from clicks, thumbs up/down and the corpus itself, frozen as a snapshot with a held-out part.

``services.training_data_build`` is the entry point (``manage.py training_data``); the format of the
files it writes is described there and in docs/relevance.md.
"""
