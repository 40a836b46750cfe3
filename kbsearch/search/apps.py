"""App config for the search use cases (the app keeps the ``search`` command and, for existing
databases, the migrations that moved the query log to ``analytics``)."""
from django.apps import AppConfig


class SearchConfig(AppConfig):
    name = "kbsearch.search"
    label = "search"
    default_auto_field = "django.db.models.BigAutoField"
