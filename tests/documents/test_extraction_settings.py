"""The KBSEARCH_EXTRACT_* settings are the limits every file read is held to."""
import pytest

from kbsearch.ingest.extract import ExtractionFailed, blocks_from_file
from kbsearch.ingest.limits import ExtractionLimits, extraction_limits
from tests.ingest.file_samples import pdf_bytes


def test_limits_follow_the_settings(settings):
    settings.KBSEARCH_EXTRACT_MAX_PAGES = 1
    settings.KBSEARCH_EXTRACT_SECONDS = 12.5
    limits = extraction_limits()
    assert (limits.max_pages, limits.seconds) == (1, 12.5)
    assert limits.max_bytes == settings.KBSEARCH_EXTRACT_MAX_BYTES
    with pytest.raises(ExtractionFailed, match=r"^PDF has 2 pages; the limit is 1 \(KBSEARCH_EXTRACT_MAX_PAGES\)$"):
        blocks_from_file(pdf_bytes([["one"], ["two"]]), filename="two.pdf")


def test_defaults_match_the_ingest_defaults():
    # settings.py and kbsearch.ingest.limits state the same product defaults; the README lists them.
    assert extraction_limits() == ExtractionLimits()
