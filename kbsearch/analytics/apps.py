"""App config for search analytics (query log, feedback, clicks)."""
from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    name = "kbsearch.analytics"
    label = "analytics"
    default_auto_field = "django.db.models.BigAutoField"
