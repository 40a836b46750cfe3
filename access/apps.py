"""App config for access."""
from django.apps import AppConfig


class AccessConfig(AppConfig):
    name = "access"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core.signals import setting_changed

        from access.resolvers import reset_principal_resolver

        def _reset_on_change(*, setting: str, **_kwargs) -> None:
            if setting == "KBSEARCH_PRINCIPAL_RESOLVER":
                reset_principal_resolver()

        setting_changed.connect(_reset_on_change, weak=False)
