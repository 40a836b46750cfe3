"""App config for relevance evaluation (it has a command and no models)."""
from django.apps import AppConfig


class EvaluationConfig(AppConfig):
    name = "kbsearch.evaluation"
    label = "evaluation"
