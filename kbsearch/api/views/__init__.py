"""API views, one module per resource; thin: validate input, call a service or selector, serialize."""
from kbsearch.api.views.documents import DocumentDetailApi
from kbsearch.api.views.feedback import ClickCreateApi, FeedbackCreateApi
from kbsearch.api.views.search import SearchApi

__all__ = ["ClickCreateApi", "DocumentDetailApi", "FeedbackCreateApi", "SearchApi"]
