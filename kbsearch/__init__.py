"""kbsearch: on-prem enterprise knowledge-base search."""
from kbsearch.celery import app as celery_app

__all__ = ["celery_app"]
