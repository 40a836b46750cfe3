"""PDF text through blocks_from_file: exact blocks, CJK, and every refusal with its reason."""
import functools

import pytest
from pypdf import PageObject

from kbsearch.ingest import extract
from kbsearch.ingest.extract import ExtractionFailed, blocks_from_file
from kbsearch.ingest.limits import Deadline, ExtractionLimits
from kbsearch.ingest.parsers import Block
from tests.ingest.file_samples import encrypted_pdf, pdf_bytes

PAGES = [["Release notes", "The sync now resumes after a crash."], ["第二页", "検索は日本語でも動きます。"]]


def test_pdf_pages_give_paragraphs_in_order_with_cjk_text():
    blocks = blocks_from_file(pdf_bytes(PAGES), filename="notes.pdf")
    assert blocks == [
        Block("paragraph", "Release notes\nThe sync now resumes after a crash."),
        Block("paragraph", "第二页\n検索は日本語でも動きます。"),
    ]


def test_media_type_wins_over_a_misleading_name():
    blocks = blocks_from_file(pdf_bytes(PAGES), filename="download", media_type="application/pdf")
    assert blocks[0].text.startswith("Release notes")


def test_encrypted_pdf_needing_a_password_is_refused():
    data = encrypted_pdf(pdf_bytes(PAGES), user_password="s3cret")
    with pytest.raises(ExtractionFailed, match="^encrypted PDF: it needs a password"):
        blocks_from_file(data, filename="locked.pdf")


def test_pdf_with_only_owner_restrictions_opens_like_any_viewer_does():
    data = encrypted_pdf(pdf_bytes(PAGES), user_password="")
    assert blocks_from_file(data, filename="restricted.pdf") == blocks_from_file(pdf_bytes(PAGES), filename="a.pdf")


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_truncated_pdf_is_refused_as_corrupt(keep):
    data = pdf_bytes(PAGES)
    with pytest.raises(ExtractionFailed, match="^corrupt or truncated PDF"):
        blocks_from_file(data[: int(len(data) * keep)], filename="cut.pdf")


def test_file_named_pdf_that_is_not_one_is_refused():
    with pytest.raises(ExtractionFailed, match=r"^not a PDF \(no %PDF- header\)$"):
        blocks_from_file(b"<html><body>Access denied</body></html>", filename="report.pdf")


def test_scanned_pdf_without_a_text_layer_is_refused_with_the_ocr_reason():
    with pytest.raises(ExtractionFailed, match="^no text: scanned images need OCR, which kbsearch does not do$"):
        blocks_from_file(pdf_bytes([], image_only_pages=3), filename="scan.pdf")


def test_pdf_of_blank_pages_is_refused_as_textless():
    with pytest.raises(ExtractionFailed, match="^no text in this PDF$"):
        blocks_from_file(pdf_bytes([[], []]), filename="blank.pdf")


def test_pdf_over_the_page_limit_is_refused_not_truncated():
    data = pdf_bytes([[f"page {n}"] for n in range(6)])
    assert len(blocks_from_file(data, filename="a.pdf", limits=ExtractionLimits(max_pages=6))) == 6
    with pytest.raises(ExtractionFailed, match=r"^PDF has 6 pages; the limit is 5 \(KBSEARCH_EXTRACT_MAX_PAGES\)$"):
        blocks_from_file(data, filename="a.pdf", limits=ExtractionLimits(max_pages=5))


def test_slow_pdf_stops_between_pages_at_the_deadline(monkeypatch):
    real_extract = PageObject.extract_text
    pages_read = []
    now = [0.0]  # a clock that moves only as pages are read: 0.125 s a page, exact in binary

    def slow_extract(page, *args, **kwargs):
        pages_read.append(page)
        now[0] += 0.125
        return real_extract(page, *args, **kwargs)

    monkeypatch.setattr(PageObject, "extract_text", slow_extract)
    monkeypatch.setattr(extract, "Deadline", functools.partial(Deadline, clock=lambda: now[0]))
    data = pdf_bytes([[f"page {n}"] for n in range(20)])
    with pytest.raises(ExtractionFailed, match=r"^reading took longer than the 0.25 s limit \(KBSEARCH_EXTRACT_SECONDS\)$"):
        blocks_from_file(data, filename="slow.pdf", limits=ExtractionLimits(seconds=0.25))
    # Two pages bring the clock to the limit, the third past it; the check before the fourth stops
    # the read (the signal timer, on the real clock, would fire only at 0.75 s).
    assert len(pages_read) == 3


def test_pdf_whose_fonts_map_to_replacement_characters_is_refused_as_garbage():
    data = pdf_bytes([["\ufffd\ufffd\ufffd\ufffd ok \ufffd\ufffd\ufffd\ufffd"]])
    with pytest.raises(ExtractionFailed, match="^text of 'mojibake.pdf' is 80% replacement, control or unassigned"):
        blocks_from_file(data, filename="mojibake.pdf")
