"""API routes under /api/: version 1 of the API, the OpenAPI 3 schema and its documentation page."""
from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from kbsearch.api.views import ClickCreateApi, DocumentDetailApi, FeedbackCreateApi, SearchApi
from kbsearch.api.views.schema import ApiDocsView

app_name = "api"

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", ApiDocsView.as_view(url_name="api:schema"), name="docs"),
    path("v1/search", SearchApi.as_view(), name="search"),
    # Any text is routed, so a malformed id gets the API's JSON 404 rather than Django's HTML page.
    path("v1/documents/<str:document_id>", DocumentDetailApi.as_view(), name="document-detail"),
    path("v1/feedback", FeedbackCreateApi.as_view(), name="feedback"),
    path("v1/clicks", ClickCreateApi.as_view(), name="clicks"),
]
