"""URL routes: the admin, sign-in, the REST API under /api/ and the search page at /."""
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("kbsearch.api.urls")),
    path("", include("kbsearch.web.urls")),
]
