"""App config for the search page."""
from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "kbsearch.web"
    label = "web"
