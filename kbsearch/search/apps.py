"""App config for the search use cases: the ``search`` command, the admin-curated synonym sets
(``models``; their cache in ``synonyms``) and, for existing databases, the migrations that moved
the query log to ``analytics``."""
from django.apps import AppConfig


class SearchConfig(AppConfig):
    name = "kbsearch.search"
    label = "search"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Connects the receivers that bump the synonym revision on every change.
        from kbsearch.search import synonyms  # noqa: F401
