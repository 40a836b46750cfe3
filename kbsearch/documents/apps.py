"""App config for the documents app."""
from django.apps import AppConfig


class DocumentsConfig(AppConfig):
    name = "kbsearch.documents"
    label = "documents"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core.signals import setting_changed

        from kbsearch.index.registry import reset_index_backend

        # Tests swap KBSEARCH_INDEX per test; the process-wide backend must follow.
        def _reset_on_change(*, setting: str, **_kwargs) -> None:
            if setting == "KBSEARCH_INDEX":
                reset_index_backend()

        setting_changed.connect(_reset_on_change, weak=False)
