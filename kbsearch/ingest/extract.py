"""Text from files: the one entry point connectors call for attachments and library files.

``blocks_from_file(data, filename=..., media_type=...)`` picks a reader by media type, then by the
file name's extension, and returns ``Block``s (headings kept where the format has them). Anything
that cannot give honest text raises ``ExtractionFailed`` with a reason an admin can act on: an
unknown, legacy or binary format, an encrypted or corrupt file, a file over the size, page, row or
time limits (``kbsearch.ingest.limits``), one with no text at all, or one whose "text" is mostly
replacement and control characters (a PDF whose fonts map to nothing). Connectors report that as a
``DocumentFailure`` (not retryable: the same bytes fail the same way), so garbage is never indexed
and one bad file never fails a run.

Formats: Markdown, HTML and plain text here; PDF (``kbsearch.ingest.pdf``), Word, Excel and
PowerPoint (``kbsearch.ingest.office``) through maintained libraries.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath

from charset_normalizer import from_bytes

from kbsearch.ingest.limits import Deadline, ExtractionFailed, ExtractionLimits, extraction_limits, hard_stop
from kbsearch.ingest.parsers import Block, blocks_from_html, blocks_from_markdown, blocks_from_text

__all__ = ["ExtractionFailed", "ExtractionLimits", "Reader", "blocks_from_file"]

# Text in which more than this share of the visible characters is replacement, control, private-use
# or unassigned code points is a broken font mapping or a binary file, not prose.
MAX_UNREADABLE_SHARE = 0.3
_UNREADABLE_CATEGORIES = frozenset({"Cc", "Cs", "Co", "Cn"})
# Control characters other than tab and newlines: PostgreSQL text cannot hold NUL, and none of them
# is text a reader wants.
_CONTROL_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class Reader:
    media_types: tuple[str, ...]
    extensions: tuple[str, ...]
    read: Callable[[bytes, ExtractionLimits, Deadline], list[Block]]


def _decoded(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise ExtractionFailed("binary content (NUL bytes) in a file declared as text")
    best = from_bytes(data).best()
    if best is None:
        raise ExtractionFailed("not text in any known encoding")
    return str(best)


_TEXT_READERS = (
    Reader(("text/markdown", "text/x-markdown"), (".md", ".markdown"), lambda data, *_: blocks_from_markdown(_decoded(data))),
    Reader(("text/html", "application/xhtml+xml"), (".html", ".htm", ".xhtml"), lambda data, *_: blocks_from_html(_decoded(data))),
    Reader(("text/plain", "text/csv"), (".txt", ".text", ".csv", ".log"), lambda data, *_: blocks_from_text(_decoded(data))),
)


def _readers() -> tuple[Reader, ...]:
    from kbsearch.ingest import office

    return _TEXT_READERS + office.READERS


def unreadable_share(text: str) -> float:
    """The share of non-space characters that are U+FFFD or in an unreadable Unicode category."""
    visible = [char for char in text if not char.isspace()]
    if not visible:
        return 0.0
    bad = sum(char == "\ufffd" or unicodedata.category(char) in _UNREADABLE_CATEGORIES for char in visible)
    return bad / len(visible)


def _cleaned(blocks: list[Block]) -> list[Block]:
    cleaned = (Block(block.kind, _CONTROL_RE.sub("", block.text), block.level) for block in blocks)
    return [block for block in cleaned if block.text.strip()]


def blocks_from_file(
    data: bytes, *, filename: str, media_type: str = "", limits: ExtractionLimits | None = None
) -> list[Block]:
    """The text blocks of a file; raises ExtractionFailed.

    ``limits`` defaults to the configured ones (``kbsearch.ingest.limits.extraction_limits``).
    """
    limits = limits or extraction_limits()
    if len(data) > limits.max_bytes:
        raise ExtractionFailed(
            f"file is {len(data):,} bytes; the limit is {limits.max_bytes:,} (KBSEARCH_EXTRACT_MAX_BYTES)"
        )
    if not data:
        raise ExtractionFailed("empty file")
    base_type = media_type.split(";", 1)[0].strip().lower()
    extension = PurePosixPath(filename).suffix.lower()
    readers = _readers()
    reader = next((r for r in readers if base_type and base_type in r.media_types), None)
    reader = reader or next((r for r in readers if extension and extension in r.extensions), None)
    if reader is None:
        raise ExtractionFailed(f"no text reader for {filename!r} ({media_type or 'no media type'})")
    deadline = Deadline(limits.seconds)
    try:
        with hard_stop(deadline):
            raw = reader.read(data, limits, deadline)
    except ExtractionFailed:
        raise
    # The readers parse untrusted bytes with third-party libraries, which raise whatever they raise
    # on a malformed file; one such file must be a recorded failure, never a crashed sync.
    except Exception as error:  # noqa: BLE001
        raise ExtractionFailed(f"unreadable file: the reader failed with {type(error).__name__}: {error}") from None
    share = unreadable_share("".join(block.text for block in raw))
    if share > MAX_UNREADABLE_SHARE:
        raise ExtractionFailed(
            f"text of {filename!r} is {share:.0%} replacement, control or unassigned characters: "
            "the file's fonts or encoding give no readable text"
        )
    blocks = _cleaned(raw)
    if not blocks:
        raise ExtractionFailed(f"no text in {filename!r}")
    return blocks
