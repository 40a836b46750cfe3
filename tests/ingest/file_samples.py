"""Builders of sample PDF, Word, Excel and PowerPoint files for the extraction tests.

The files are made by the libraries themselves (pypdf, python-docx, openpyxl, python-pptx), so no
binary fixture is committed. The PDF builder writes real text objects in a Type0 font with a
ToUnicode map, which is how PDFs carry CJK text, so extraction goes through the same path as a PDF
from a word processor.
"""
from __future__ import annotations

import io

from pypdf import PdfReader, PdfWriter
from pypdf.generic import (
    ArrayObject,
    DecodedStreamObject,
    DictionaryObject,
    NameObject,
    NumberObject,
    TextStringObject,
)


def _stream(writer: PdfWriter, data: bytes):
    stream = DecodedStreamObject()
    stream.set_data(data)
    return writer._add_object(stream)


def _unicode_font(writer: PdfWriter, chars: set[str]):
    """A Type0 font whose 2-byte codes are the characters' code points, mapped back by ToUnicode."""
    cmap = [
        "/CIDInit /ProcSet findresource begin", "12 dict begin", "begincmap", "/CMapName /KB-UCS def",
        "/CMapType 2 def", "1 begincodespacerange", "<0000> <FFFF>", "endcodespacerange",
        f"{len(chars)} beginbfchar", *(f"<{ord(c):04X}> <{ord(c):04X}>" for c in sorted(chars)),
        "endbfchar", "endcmap", "CMapName currentdict /CMap defineresource pop", "end", "end",
    ]
    name = NameObject
    descendant = DictionaryObject({
        name("/Type"): name("/Font"), name("/Subtype"): name("/CIDFontType2"), name("/BaseFont"): name("/KBSans"),
        name("/CIDSystemInfo"): DictionaryObject({
            name("/Registry"): TextStringObject("Adobe"), name("/Ordering"): TextStringObject("Identity"),
            name("/Supplement"): NumberObject(0),
        }),
    })
    font = DictionaryObject({
        name("/Type"): name("/Font"), name("/Subtype"): name("/Type0"), name("/BaseFont"): name("/KBSans"),
        name("/Encoding"): name("/Identity-H"), name("/DescendantFonts"): ArrayObject([writer._add_object(descendant)]),
        name("/ToUnicode"): _stream(writer, "\n".join(cmap).encode()),
    })
    return writer._add_object(font)


def pdf_bytes(pages: list[list[str]], *, image_only_pages: int = 0) -> bytes:
    """A PDF with one page per list of lines, then pages holding only an image, as a scanner makes them."""
    writer = PdfWriter()
    font = _unicode_font(writer, {c for lines in pages for line in lines for c in line} or {"x"})
    for lines in pages:
        page = writer.add_blank_page(612, 792)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})}
        )
        ops = ["BT", "/F1 12 Tf", "14 TL", "72 720 Td"]
        ops.extend("<" + "".join(f"{ord(c):04X}" for c in line) + "> Tj T*" for line in lines)
        ops.append("ET")
        page[NameObject("/Contents")] = _stream(writer, "\n".join(ops).encode())
    for _ in range(image_only_pages):
        page = writer.add_blank_page(612, 792)
        image = DecodedStreamObject()
        image.set_data(b"\x00\xff\x00\xff")
        image.update({
            NameObject("/Type"): NameObject("/XObject"), NameObject("/Subtype"): NameObject("/Image"),
            NameObject("/Width"): NumberObject(2), NameObject("/Height"): NumberObject(2),
            NameObject("/ColorSpace"): NameObject("/DeviceGray"), NameObject("/BitsPerComponent"): NumberObject(8),
        })
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/XObject"): DictionaryObject({NameObject("/Im1"): writer._add_object(image)})}
        )
        page[NameObject("/Contents")] = _stream(writer, b"q 540 0 0 720 36 36 cm /Im1 Do Q")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def encrypted_pdf(data: bytes, *, user_password: str, owner_password: str = "owner") -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password, owner_password, algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def docx_bytes(build) -> bytes:
    import docx

    document = docx.Document()
    build(document)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def xlsx_bytes(sheets: dict[str, list[list]]) -> bytes:
    import openpyxl

    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for title, rows in sheets.items():
        sheet = workbook.create_sheet(title)
        for row in rows:
            sheet.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def pptx_bytes(build) -> bytes:
    import pptx

    presentation = pptx.Presentation()
    build(presentation)
    out = io.BytesIO()
    presentation.save(out)
    return out.getvalue()
