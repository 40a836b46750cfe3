"""URL routes: the admin (with the permissions pages under admin/permissions/), sign-in, the REST API under /api/ and the search page at /."""
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    # Before the admin's own routes, inside its URL space: staff-only pages wrapped by admin_view.
    path("admin/permissions/", include("kbsearch.permissions.urls")),
    path("admin/", admin.site.urls),
    path("api/", include("kbsearch.api.urls")),
    path("", include("kbsearch.web.urls")),
]
