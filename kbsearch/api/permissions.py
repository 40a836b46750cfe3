"""Who may read the OpenAPI schema and its Swagger UI page."""
from django.conf import settings
from rest_framework.permissions import BasePermission


class ApiDocsAccess(BasePermission):
    """Signed-in users (token or session) only, unless ``KBSEARCH_API_DOCS_PUBLIC`` is on.

    The schema names every endpoint, field and limit: a map worth keeping from anonymous clients by
    default. Read on each request, so the setting takes effect without re-importing the views.
    """

    def has_permission(self, request, view) -> bool:
        if getattr(settings, "KBSEARCH_API_DOCS_PUBLIC", False):
            return True
        return bool(request.user and request.user.is_authenticated)
