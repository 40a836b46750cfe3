"""Word, Excel and PowerPoint readers (and the PDF one) for ``kbsearch.ingest.extract``.

The libraries: python-docx, openpyxl (read-only mode, cached values of formulas) and python-pptx,
all maintained and all reading the Office Open XML zip formats. Before any of them opens a file it
is checked here: a Compound File (OLE) is either a password-protected Office file (encryption wraps
the zip in OLE, with an ``EncryptionInfo`` stream) or a legacy 97-2003 binary file, both refused
with that reason; a zip whose members would inflate past ``max_unzipped_bytes`` is refused as a
zip bomb (Python's zipfile never inflates a member past its declared size, so the declared sizes
are a safe bound); a file that is not a zip is corrupt.

Structure kept: Word headings (by paragraph style, including styles based on a heading style) with
their levels, paragraphs, lists and tables as rows of cells; one heading per Excel sheet and its
rows as a table; one heading per slide title, then the slide's text frames, tables and notes.
"""
from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time

from kbsearch.ingest.extract import Reader
from kbsearch.ingest.limits import Deadline, ExtractionFailed, ExtractionLimits
from kbsearch.ingest.parsers import Block
from kbsearch.ingest.pdf import blocks_from_pdf

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# The stream names of an encrypted OOXML package, as stored (UTF-16-LE) in the OLE directory.
_ENCRYPTION_STREAM = "EncryptionInfo".encode("utf-16-le")
_HEADING_STYLE_RE = re.compile(r"heading\s*([1-9])$", re.IGNORECASE)
_LIBRARY_ERRORS = (KeyError, ValueError, TypeError, AttributeError, IndexError, zipfile.BadZipFile, OSError)


def _checked_zip(data: bytes, kind: str, limits: ExtractionLimits) -> None:
    if data.startswith(_OLE_MAGIC):
        if _ENCRYPTION_STREAM in data:
            raise ExtractionFailed(f"password-protected {kind} file: kbsearch cannot open it")
        raise ExtractionFailed(f"legacy {kind} 97-2003 file under a new-format name: save it in the new format")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unzipped = sum(member.file_size for member in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise ExtractionFailed(f"corrupt or truncated {kind} file (not a readable zip: {error})") from None
    if unzipped > limits.max_unzipped_bytes:
        raise ExtractionFailed(
            f"{kind} file would unzip to {unzipped:,} bytes; the limit is {limits.max_unzipped_bytes:,} "
            "(KBSEARCH_EXTRACT_MAX_UNZIPPED_BYTES): refused as a possible zip bomb"
        )


@contextmanager
def _library_errors(kind: str) -> Iterator[None]:
    """Turn what a library raises on a malformed package into a refusal, keeping our own refusals."""
    try:
        yield
    except ExtractionFailed:
        raise
    except _LIBRARY_ERRORS as error:
        raise ExtractionFailed(f"not a readable {kind} file: {type(error).__name__}: {error}") from None


# --- Word ------------------------------------------------------------------------------------------


def _heading_level(style) -> int:
    """1-6 for Title and Heading 1-9 (or a style based on one), else 0."""
    for _ in range(8):  # base-style chains are short; a cycle in a broken file must not loop
        if style is None:
            return 0
        name = (style.name or "").strip()
        if name.lower() == "title":
            return 1
        match = _HEADING_STYLE_RE.match(name)
        if match:
            return min(int(match.group(1)), 6)
        style = style.base_style
    return 0


def _is_list_item(paragraph) -> bool:
    properties = paragraph._p.pPr
    style_name = (paragraph.style.name if paragraph.style is not None else "") or ""
    return style_name.lower().startswith("list") or (properties is not None and properties.numPr is not None)


def _table_text(rows) -> str:
    """One line per row, cells joined by " | " as the HTML and Markdown readers do; empty rows dropped."""
    lines = []
    for row in rows:
        cells = [" ".join((cell or "").split()) for cell in row]
        while cells and not cells[-1]:
            cells.pop()
        if any(cells):
            lines.append(" | ".join(cells))
    return "\n".join(lines)


def _docx_table_rows(table) -> list[list[str]]:
    # python-docx repeats a merged cell in every grid position it covers; keep its first one only.
    # Holding the elements (not their ids) keeps lxml from handing a freed id to another cell.
    seen: set = set()
    rows = []
    for row in table.rows:
        cells = []
        for cell in row.cells:
            if cell._tc not in seen:
                seen.add(cell._tc)
                cells.append(cell.text)
        rows.append(cells)
    return rows


def blocks_from_docx(data: bytes, limits: ExtractionLimits, deadline: Deadline) -> list[Block]:
    import docx

    _checked_zip(data, "Word", limits)
    with _library_errors("Word"):
        return _docx_blocks(docx.Document(io.BytesIO(data)), deadline)


def _docx_blocks(document, deadline: Deadline) -> list[Block]:
    from docx.table import Table

    blocks: list[Block] = []
    list_lines: list[str] = []

    def flush_list() -> None:
        if list_lines:
            blocks.append(Block("list", "\n".join(list_lines)))
            list_lines.clear()

    for item in document.iter_inner_content():
        deadline.check()
        if isinstance(item, Table):
            flush_list()
            blocks.append(Block("table", _table_text(_docx_table_rows(item))))
            continue
        text = item.text.strip()
        level = _heading_level(item.style)
        if level or not _is_list_item(item):
            flush_list()
            blocks.append(Block("heading", " ".join(text.split()), level) if level else Block("paragraph", text))
        elif text:
            list_lines.append(f"- {text}")
    flush_list()
    return blocks


# --- Excel -----------------------------------------------------------------------------------------


def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="minutes") if (value.hour or value.minute) else value.date().isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    return str(value)


def blocks_from_xlsx(data: bytes, limits: ExtractionLimits, deadline: Deadline) -> list[Block]:
    import openpyxl

    _checked_zip(data, "Excel", limits)
    with _library_errors("Excel"):
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    blocks: list[Block] = []
    rows_seen = cells_seen = 0
    with _library_errors("Excel"):
        try:
            for sheet in workbook.worksheets:
                lines: list[list[str]] = []
                for row in sheet.iter_rows(values_only=True):
                    rows_seen += 1
                    cells_seen += len(row)
                    if rows_seen > limits.max_rows:
                        raise ExtractionFailed(
                            f"workbook has more than {limits.max_rows:,} rows (KBSEARCH_EXTRACT_MAX_ROWS)"
                        )
                    if cells_seen > limits.max_cells:
                        raise ExtractionFailed(
                            f"workbook has more than {limits.max_cells:,} cells (KBSEARCH_EXTRACT_MAX_CELLS)"
                        )
                    if rows_seen % 100 == 0:
                        deadline.check()
                    cells = [_cell_text(value) for value in row]
                    if any(cell.strip() for cell in cells):
                        lines.append(cells)
                if lines:  # an empty sheet adds no heading of its own
                    blocks.append(Block("heading", sheet.title, 1))
                    blocks.append(Block("table", _table_text(lines)))
        finally:
            workbook.close()  # a read-only workbook keeps its zip open until closed
    return blocks


# --- PowerPoint ------------------------------------------------------------------------------------


def _shape_blocks(shape, title_shape, deadline: Deadline) -> list[Block]:
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    deadline.check()
    if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
        return [block for child in shape.shapes for block in _shape_blocks(child, title_shape, deadline)]
    if title_shape is not None and shape.shape_id == title_shape.shape_id:
        return []
    if getattr(shape, "has_table", False) and shape.has_table:
        return [Block("table", _table_text([cell.text for cell in row.cells] for row in shape.table.rows))]
    if getattr(shape, "has_text_frame", False) and shape.has_text_frame:
        lines = [paragraph.text.strip() for paragraph in shape.text_frame.paragraphs]
        return [Block("paragraph", "\n".join(line for line in lines if line))]
    return []


def blocks_from_pptx(data: bytes, limits: ExtractionLimits, deadline: Deadline) -> list[Block]:
    import pptx

    _checked_zip(data, "PowerPoint", limits)
    with _library_errors("PowerPoint"):
        slides = list(pptx.Presentation(io.BytesIO(data)).slides)
    if len(slides) > limits.max_slides:
        raise ExtractionFailed(
            f"presentation has {len(slides):,} slides; the limit is {limits.max_slides:,} (KBSEARCH_EXTRACT_MAX_SLIDES)"
        )
    blocks: list[Block] = []
    with _library_errors("PowerPoint"):
        for slide in slides:
            title_shape = slide.shapes.title
            title = " ".join(title_shape.text_frame.text.split()) if title_shape is not None else ""
            if title:
                blocks.append(Block("heading", title, 1))
            for shape in slide.shapes:
                blocks.extend(_shape_blocks(shape, title_shape, deadline))
            if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
                blocks.append(Block("paragraph", slide.notes_slide.notes_text_frame.text.strip()))
    return blocks


# --- Registry --------------------------------------------------------------------------------------


def _legacy(kind: str, new_extension: str):
    def refuse(_data: bytes, _limits: ExtractionLimits, _deadline: Deadline) -> list[Block]:
        raise ExtractionFailed(
            f"legacy {kind} 97-2003 format is not supported: save it as {new_extension} to have it indexed"
        )

    return refuse


_OOXML = "application/vnd.openxmlformats-officedocument"
READERS: tuple[Reader, ...] = (
    Reader(("application/pdf", "application/x-pdf"), (".pdf",), blocks_from_pdf),
    Reader((f"{_OOXML}.wordprocessingml.document",), (".docx",), blocks_from_docx),
    Reader((f"{_OOXML}.spreadsheetml.sheet",), (".xlsx",), blocks_from_xlsx),
    Reader((f"{_OOXML}.presentationml.presentation",), (".pptx",), blocks_from_pptx),
    Reader(("application/msword",), (".doc", ".dot"), _legacy("Word", ".docx")),
    Reader(("application/vnd.ms-excel",), (".xls", ".xlt"), _legacy("Excel", ".xlsx")),
    Reader(("application/vnd.ms-powerpoint",), (".ppt", ".pps", ".pot"), _legacy("PowerPoint", ".pptx")),
)
