"""The Celery app. Without a broker URL (the embedded default) tasks run inline."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kbsearch.settings")
# Idle OpenMP threads must sleep, not spin: spinning starves the other core (see embeddings/).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

app = Celery("kbsearch")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
