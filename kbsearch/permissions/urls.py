"""Routes of the permissions pages, mounted under /admin/permissions/ by ``kbsearch.urls``."""
from django.contrib import admin
from django.urls import path

from kbsearch.permissions import views

app_name = "permissions"

urlpatterns = [
    path("effective-access/", admin.site.admin_view(views.effective_access), name="effective_access"),
    path("why/", admin.site.admin_view(views.why), name="why"),
    path("who/", admin.site.admin_view(views.who), name="who"),
]
