"""App config for the documents app."""
from django.apps import AppConfig
from django.conf import settings


def extraction_limits_from_settings() -> None:
    """Make the KBSEARCH_EXTRACT_* settings the limits of every file read (kbsearch.ingest.limits)."""
    from kbsearch.ingest.limits import ExtractionLimits, extraction_limits_configure

    extraction_limits_configure(ExtractionLimits(
        max_bytes=settings.KBSEARCH_EXTRACT_MAX_BYTES,
        max_unzipped_bytes=settings.KBSEARCH_EXTRACT_MAX_UNZIPPED_BYTES,
        max_pages=settings.KBSEARCH_EXTRACT_MAX_PAGES,
        max_slides=settings.KBSEARCH_EXTRACT_MAX_SLIDES,
        max_rows=settings.KBSEARCH_EXTRACT_MAX_ROWS,
        max_cells=settings.KBSEARCH_EXTRACT_MAX_CELLS,
        seconds=settings.KBSEARCH_EXTRACT_SECONDS,
    ))


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

        # kbsearch.ingest has no Django: it is handed the file-reading limits from settings here,
        # and again whenever a test changes one.
        extraction_limits_from_settings()

        # Tests swap KBSEARCH_INDEX per test; the process-wide backend must follow.
        def _reset_on_change(*, setting: str, **_kwargs) -> None:
            if setting == "KBSEARCH_INDEX":
                reset_index_backend()
            if setting.startswith("KBSEARCH_EXTRACT_"):
                extraction_limits_from_settings()

        setting_changed.connect(_reset_on_change, weak=False)
