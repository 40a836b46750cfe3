"""Text from files: the one entry point connectors call for attachments and library files.

``blocks_from_file(data, filename=..., media_type=...)`` picks a reader by media type, then by the
file name's extension, and returns ``Block``s (headings kept where the format has them). Anything
that cannot give honest text raises ``ExtractionFailed`` with a reason an admin can act on: an
unknown or binary format, an encrypted or corrupt file, a file over the size, page or time limits,
or one with no text at all. Connectors report that as a ``DocumentFailure`` (not retryable: the same
bytes fail the same way), so garbage is never indexed and one bad file never fails a run.

Formats: Markdown, HTML, plain text here; PDF, Word, Excel and PowerPoint through maintained
libraries (``kbsearch.ingest.office``) when they are installed.
"""
from dataclasses import dataclass
from pathlib import PurePosixPath

from charset_normalizer import from_bytes

from kbsearch.ingest.parsers import Block, blocks_from_html, blocks_from_markdown, blocks_from_text

# Files larger than this are refused before any parsing (a 2 GB video named .txt must not be read).
MAX_FILE_BYTES = 50 * 1024 * 1024


class ExtractionFailed(ValueError):
    """The file gives no honest text; the message says why."""


@dataclass(frozen=True)
class _Reader:
    media_types: tuple[str, ...]
    extensions: tuple[str, ...]
    read: object  # Callable[[bytes], list[Block]]


def _decoded(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise ExtractionFailed("binary content (NUL bytes) in a file declared as text")
    best = from_bytes(data).best()
    if best is None:
        raise ExtractionFailed("not text in any known encoding")
    return str(best)


_TEXT_READERS = (
    _Reader(("text/markdown", "text/x-markdown"), (".md", ".markdown"), lambda data: blocks_from_markdown(_decoded(data))),
    _Reader(("text/html", "application/xhtml+xml"), (".html", ".htm", ".xhtml"), lambda data: blocks_from_html(_decoded(data))),
    _Reader(("text/plain", "text/csv"), (".txt", ".text", ".csv", ".log"), lambda data: blocks_from_text(_decoded(data))),
)


def _readers() -> tuple[_Reader, ...]:
    from kbsearch.ingest import office

    return _TEXT_READERS + office.READERS


def blocks_from_file(data: bytes, *, filename: str, media_type: str = "") -> list[Block]:
    """The text blocks of a file; raises ExtractionFailed."""
    if len(data) > MAX_FILE_BYTES:
        raise ExtractionFailed(f"file is {len(data):,} bytes; the limit is {MAX_FILE_BYTES:,}")
    if not data:
        raise ExtractionFailed("empty file")
    base_type = media_type.split(";", 1)[0].strip().lower()
    extension = PurePosixPath(filename).suffix.lower()
    readers = _readers()
    reader = next((r for r in readers if base_type and base_type in r.media_types), None)
    reader = reader or next((r for r in readers if extension and extension in r.extensions), None)
    if reader is None:
        raise ExtractionFailed(f"no text reader for {filename!r} ({media_type or 'no media type'})")
    blocks = [block for block in reader.read(data) if block.text.strip()]
    if not blocks:
        raise ExtractionFailed(f"no text in {filename!r}")
    return blocks
