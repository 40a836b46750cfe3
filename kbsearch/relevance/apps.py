"""App config for the relevance loop (training data, training runs, model versions)."""
from django.apps import AppConfig


class RelevanceConfig(AppConfig):
    name = "kbsearch.relevance"
    label = "relevance"
    default_auto_field = "django.db.models.BigAutoField"
