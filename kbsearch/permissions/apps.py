"""App config for the permissions admin pages (no models)."""
from django.apps import AppConfig


class PermissionsConfig(AppConfig):
    name = "kbsearch.permissions"
    label = "permissions"

    def ready(self) -> None:
        from django.contrib import admin

        # The admin index links the pages from a small section above the apps. A project that sets
        # its own index template keeps it (the pages stay reachable from the user and document pages).
        if admin.site.index_template is None:
            admin.site.index_template = "admin/permissions/index.html"
