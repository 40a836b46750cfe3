"""The Celery app. Without a broker URL (the embedded default) tasks run inline."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kbsearch.settings")

app = Celery("kbsearch")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
