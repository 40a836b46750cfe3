"""App config for the search core."""
from django.apps import AppConfig


class SearchConfig(AppConfig):
    name = "kbsearch.search"
    label = "search"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core.signals import setting_changed

        from kbsearch.search.backends import reset_index_backend

        def _reset_on_change(*, setting: str, **_kwargs) -> None:
            if setting == "KBSEARCH_INDEX":
                reset_index_backend()

        setting_changed.connect(_reset_on_change, weak=False)
