"""Word, Excel and PowerPoint text through blocks_from_file: exact blocks, CJK, limits, refusals."""
import io
import zipfile
from datetime import datetime

import pytest
from pptx.util import Inches

from kbsearch.ingest.extract import ExtractionFailed, blocks_from_file
from kbsearch.ingest.limits import ExtractionLimits
from kbsearch.ingest.parsers import Block
from tests.ingest.file_samples import docx_bytes, pptx_bytes, xlsx_bytes

DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def _word_guide(document) -> None:
    document.add_heading("Onboarding guide", 0)  # the Title style
    document.add_heading("安装", 1)
    document.add_paragraph("先安装客户端，然后登录。")
    document.add_paragraph("Open the portal", style="List Bullet")
    document.add_paragraph("Request access", style="List Number")
    document.add_heading("Details", 2)
    table = document.add_table(rows=3, cols=3)
    for column, text in enumerate(["Setting", "Default", "Note"]):
        table.cell(0, column).text = text
    table.cell(1, 0).text = "timeout"
    table.cell(1, 1).merge(table.cell(1, 2)).text = "60 s, both columns"
    table.cell(2, 0).text = "語言"
    table.cell(2, 1).text = "自動"
    document.add_paragraph("")
    document.add_heading("Deepest", 8)
    document.add_paragraph("Last words.")


def test_word_headings_keep_their_levels_with_lists_tables_and_cjk():
    assert blocks_from_file(docx_bytes(_word_guide), filename="guide.docx") == [
        Block("heading", "Onboarding guide", 1),
        Block("heading", "安装", 1),
        Block("paragraph", "先安装客户端，然后登录。"),
        Block("list", "- Open the portal\n- Request access"),
        Block("heading", "Details", 2),
        Block("table", "Setting | Default | Note\ntimeout | 60 s, both columns\n語言 | 自動"),
        Block("heading", "Deepest", 6),  # Heading 7-9 fold into the deepest level blocks have
        Block("paragraph", "Last words."),
    ]


def test_word_style_based_on_a_heading_style_is_a_heading():
    from docx.enum.style import WD_STYLE_TYPE

    def build(document):
        custom = document.styles.add_style("Chapter", WD_STYLE_TYPE.PARAGRAPH)
        custom.base_style = document.styles["Heading 2"]
        document.add_paragraph("Chapter one", style="Chapter")
        document.add_paragraph("Body.")

    assert blocks_from_file(docx_bytes(build), filename="c.docx") == [
        Block("heading", "Chapter one", 2), Block("paragraph", "Body.")
    ]


def test_excel_sheets_become_headings_and_rows_become_table_lines():
    data = xlsx_bytes({
        "売上": [["Region", "Q1", "Q2"], ["東京", 1200.0, 1350.5], [None, None, None], ["大阪", 800, None]],
        "Empty": [],
        "Dates": [["Released", datetime(2024, 5, 1)], ["Meeting", datetime(2024, 5, 2, 14, 30)]],
    })
    assert blocks_from_file(data, filename="sales.xlsx") == [
        Block("heading", "売上", 1),
        Block("table", "Region | Q1 | Q2\n東京 | 1200 | 1350.5\n大阪 | 800"),
        Block("heading", "Dates", 1),
        Block("table", "Released | 2024-05-01\nMeeting | 2024-05-02 14:30"),
    ]


def test_excel_over_the_row_or_cell_limit_is_refused():
    data = xlsx_bytes({"A": [[n, n] for n in range(30)], "B": [[n, n] for n in range(30)]})
    assert len(blocks_from_file(data, filename="a.xlsx", limits=ExtractionLimits(max_rows=60))) == 4
    with pytest.raises(ExtractionFailed, match=r"^workbook has more than 59 rows \(KBSEARCH_EXTRACT_MAX_ROWS\)$"):
        blocks_from_file(data, filename="a.xlsx", limits=ExtractionLimits(max_rows=59))
    with pytest.raises(ExtractionFailed, match=r"^workbook has more than 100 cells \(KBSEARCH_EXTRACT_MAX_CELLS\)$"):
        blocks_from_file(data, filename="a.xlsx", limits=ExtractionLimits(max_cells=100))


def _deck(presentation) -> None:
    first = presentation.slides.add_slide(presentation.slide_layouts[1])  # title and content
    first.shapes.title.text = "四半期の結果"
    body = first.placeholders[1].text_frame
    body.text = "Revenue up 12%"
    body.add_paragraph().text = "新規顧客 40 社"
    first.notes_slide.notes_text_frame.text = "Mention the Osaka office."
    second = presentation.slides.add_slide(presentation.slide_layouts[5])  # title only
    second.shapes.title.text = "Numbers"
    table = second.shapes.add_table(2, 2, Inches(1), Inches(2), Inches(4), Inches(1)).table
    table.cell(0, 0).text, table.cell(0, 1).text = "Quarter", "Revenue"
    table.cell(1, 0).text = "Q1"
    group = second.shapes.add_group_shape()
    group.shapes.add_textbox(Inches(1), Inches(4), Inches(3), Inches(1)).text_frame.text = "Grouped caption"
    untitled = presentation.slides.add_slide(presentation.slide_layouts[6])  # blank
    untitled.shapes.add_textbox(Inches(1), Inches(1), Inches(3), Inches(1)).text_frame.text = "Thanks"


def test_powerpoint_slide_titles_are_headings_then_text_tables_groups_and_notes():
    assert blocks_from_file(pptx_bytes(_deck), filename="q1.pptx") == [
        Block("heading", "四半期の結果", 1),
        Block("paragraph", "Revenue up 12%\n新規顧客 40 社"),
        Block("paragraph", "Mention the Osaka office."),
        Block("heading", "Numbers", 1),
        Block("table", "Quarter | Revenue\nQ1"),
        Block("paragraph", "Grouped caption"),
        Block("paragraph", "Thanks"),
    ]


def test_powerpoint_over_the_slide_limit_is_refused():
    data = pptx_bytes(_deck)
    with pytest.raises(ExtractionFailed, match=r"^presentation has 3 slides; the limit is 2 \(KBSEARCH_EXTRACT_MAX_SLIDES\)$"):
        blocks_from_file(data, filename="q1.pptx", limits=ExtractionLimits(max_slides=2))


@pytest.mark.parametrize(("filename", "media_type", "reason"), [
    ("old.doc", "", "legacy Word 97-2003 format is not supported: save it as .docx"),
    ("old.xls", "", "legacy Excel 97-2003 format is not supported: save it as .xlsx"),
    ("old.ppt", "", "legacy PowerPoint 97-2003 format is not supported: save it as .pptx"),
    ("download", "application/msword", "legacy Word 97-2003 format is not supported: save it as .docx"),
    ("download", "application/vnd.ms-excel", "legacy Excel 97-2003 format is not supported: save it as .xlsx"),
])
def test_legacy_binary_office_formats_are_refused_with_the_way_out(filename, media_type, reason):
    with pytest.raises(ExtractionFailed, match=f"^{reason} to have it indexed$"):
        blocks_from_file(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600, filename=filename, media_type=media_type)


OLE_HEADER = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504
# Office encrypts a .docx by wrapping it in a Compound File whose directory names these streams.
ENCRYPTED_DIRECTORY = "EncryptionInfo".encode("utf-16-le") + b"\x00" * 50 + "EncryptedPackage".encode("utf-16-le")


@pytest.mark.parametrize("filename", ["locked.docx", "locked.xlsx", "locked.pptx"])
def test_password_protected_office_file_is_refused(filename):
    with pytest.raises(ExtractionFailed, match=r"^password-protected (Word|Excel|PowerPoint) file: kbsearch cannot open it$"):
        blocks_from_file(OLE_HEADER + ENCRYPTED_DIRECTORY, filename=filename)


def test_legacy_file_renamed_to_the_new_extension_is_refused():
    with pytest.raises(ExtractionFailed, match="^legacy Word 97-2003 file under a new-format name"):
        blocks_from_file(OLE_HEADER + b"W\x00o\x00r\x00d\x00", filename="renamed.docx")


@pytest.mark.parametrize(("filename", "data"), [
    ("guide.docx", docx_bytes(_word_guide)),
    ("sales.xlsx", xlsx_bytes({"A": [["x"]]})),
    ("q1.pptx", pptx_bytes(_deck)),
])
def test_truncated_office_file_is_refused_as_corrupt(filename, data):
    with pytest.raises(ExtractionFailed, match=r"^corrupt or truncated (Word|Excel|PowerPoint) file \(not a readable zip"):
        blocks_from_file(data[: len(data) // 2], filename=filename)


def test_zip_that_is_not_the_declared_office_format_is_refused():
    with pytest.raises(ExtractionFailed, match="^not a readable Word file: "):
        blocks_from_file(xlsx_bytes({"A": [["x"]]}), filename="mislabelled.docx", media_type=DOCX_TYPE)


def test_office_file_that_would_unzip_past_the_limit_is_refused_as_a_zip_bomb():
    source = io.BytesIO(docx_bytes(_word_guide))
    bomb = io.BytesIO()
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as padded:
        for member in original.infolist():
            padded.writestr(member, original.read(member))
        padded.writestr("word/media/padding.bin", b"\x00" * 3_000_000)  # deflates to ~3 KB
    data = bomb.getvalue()
    assert len(data) < 100_000
    assert blocks_from_file(data, filename="padded.docx")[0] == Block("heading", "Onboarding guide", 1)
    with pytest.raises(ExtractionFailed, match=r"^Word file would unzip to [\d,]+ bytes; the limit is 2,000,000 .*zip bomb$"):
        blocks_from_file(data, filename="padded.docx", limits=ExtractionLimits(max_unzipped_bytes=2_000_000))
