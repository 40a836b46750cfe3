"""Admin pages of the relevance loop; each page lives in its own module."""
from kbsearch.relevance import admin_models, admin_training  # noqa: F401 (registers the pages)
