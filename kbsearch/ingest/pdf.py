"""PDF text through pypdf, page by page, with the page and time limits checked between pages.

pypdf rather than pdfminer.six: both are maintained (pypdf releases monthly under the py-pdf
organisation), but pypdf is pure Python with no dependencies, opens pages lazily so the page cap and
the deadline are checked before each page is parsed, decrypts AES with the already pinned
``cryptography``, and was the faster of the two on text PDFs. pdfminer's finer layout analysis
(columns, reading order) matters less for search than for display.

A PDF has no reliable structure (headings are just larger glyphs), so each page gives paragraph
blocks split at blank lines. Refused: a file that is not a PDF, an encrypted one that needs a
password (one with an empty user password, i.e. only "owner" restrictions, opens as readers do),
a corrupt one, one over the page limit, and one whose pages have no text layer (scans need OCR).
"""
from __future__ import annotations

import io
import logging

from kbsearch.ingest.limits import Deadline, ExtractionFailed, ExtractionLimits
from kbsearch.ingest.parsers import Block, blocks_from_text

# pypdf logs a warning for every recoverable defect; a sync of thousands of files would drown in them.
logging.getLogger("pypdf").setLevel(logging.ERROR)


def _has_images(page) -> bool:
    resources = page.get("/Resources") or {}
    xobjects = resources.get("/XObject") or {}
    return any(xobject.get_object().get("/Subtype") == "/Image" for xobject in xobjects.values())


def _opened(data: bytes):
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PdfReadError

    if b"%PDF-" not in data[:1024]:
        raise ExtractionFailed("not a PDF (no %PDF- header)")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise ExtractionFailed("encrypted PDF: it needs a password, which kbsearch does not have")
        len(reader.pages)  # reads the page tree, where truncated files usually fail
    except ExtractionFailed:
        raise
    except (FileNotDecryptedError, NotImplementedError) as error:
        raise ExtractionFailed(f"encrypted PDF that cannot be opened: {error}") from None
    except (PdfReadError, ValueError, KeyError, TypeError, IndexError, AttributeError) as error:
        raise ExtractionFailed(f"corrupt or truncated PDF: {error or type(error).__name__}") from None
    return reader


def blocks_from_pdf(data: bytes, limits: ExtractionLimits, deadline: Deadline) -> list[Block]:
    reader = _opened(data)
    page_count = len(reader.pages)
    if page_count > limits.max_pages:
        raise ExtractionFailed(
            f"PDF has {page_count:,} pages; the limit is {limits.max_pages:,} (KBSEARCH_EXTRACT_MAX_PAGES)"
        )
    blocks: list[Block] = []
    image_pages = 0
    for number, page in enumerate(reader.pages, start=1):
        deadline.check()
        try:
            text = page.extract_text() or ""
            image_pages += not text.strip() and _has_images(page)
        # pypdf raises many kinds of errors on a damaged page; one bad page spoils the file.
        except Exception as error:  # noqa: BLE001
            raise ExtractionFailed(f"corrupt PDF: page {number} cannot be read ({type(error).__name__}: {error})") from None
        blocks.extend(blocks_from_text(text))
    if not blocks and image_pages:
        raise ExtractionFailed("no text: scanned images need OCR, which kbsearch does not do")
    if not blocks:
        raise ExtractionFailed("no text in this PDF")
    return blocks
