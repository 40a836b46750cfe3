"""App config for the documents app."""
from django.apps import AppConfig


class DocumentsConfig(AppConfig):
    name = "kbsearch.documents"
    label = "documents"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core.signals import setting_changed

        from access.mapping import identity_scope_changed
        from kbsearch.documents.scoping import source_access_rescope_on_mapping
        from kbsearch.index.registry import reset_index_backend

        # A source given an identity mapping has its stored access lists renamed (access sits
        # below this app, so it announces the change rather than calling us).
        identity_scope_changed.connect(source_access_rescope_on_mapping, dispatch_uid="kbsearch-rescope-on-mapping")

        # Tests swap KBSEARCH_INDEX per test; the process-wide backend must follow.
        def _reset_on_change(*, setting: str, **_kwargs) -> None:
            if setting == "KBSEARCH_INDEX":
                reset_index_backend()

        setting_changed.connect(_reset_on_change, weak=False)
