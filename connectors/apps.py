"""App config for connectors."""
from django.apps import AppConfig


class ConnectorsConfig(AppConfig):
    name = "connectors"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Importing the built-in connectors registers them.
        # And the schedules module connects the receiver that drops a deleted source's schedule.
        from connectors import (
            confluence,  # noqa: F401
            filesystem,  # noqa: F401
            schedules,  # noqa: F401
        )
        from connectors.sharepoint import connector  # noqa: F401
