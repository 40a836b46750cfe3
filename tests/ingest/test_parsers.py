"""The Markdown, HTML and plain-text parsers that turn files into blocks."""
from kbsearch.ingest.parsers import Block, blocks_from_html, blocks_from_markdown, blocks_from_text
from tests.ingest.samples import HTML, MARKDOWN


def test_blocks_from_markdown():
    assert blocks_from_markdown(MARKDOWN) == [
        Block("heading", "Guide", 1),
        Block("paragraph", "Intro with bold, code and a link. A wrapped line."),
        Block("heading", "安装", 2),
        Block("paragraph", "第一行第二行"),  # a CJK line wrap adds no space
        Block("list", "- one\n- two\n  - nested"),
        Block("list", "1. first\n2. second"),
        Block("table", "Name | Value\na | 1"),
        Block("code", "def f():\n    return 1"),
        Block("paragraph", "Quoted advice."),
        Block("heading", "Raw HTML", 3),
        Block("paragraph", "inside markdown"),
        Block("paragraph", "diagram"),
    ]


def test_blocks_from_html():
    assert blocks_from_html(HTML) == [
        Block("heading", "Guide", 1),
        Block("paragraph", "Loose bold text"),
        Block("paragraph", "First line\nsecond line"),
        Block("paragraph", "tail"),
        Block("list", "- one\n  - nested\n- two"),
        Block("list", "1. first\n2. second"),
        Block("code", "def f():\n    return 1"),
        Block("table", "Name | Value\na | 1"),
        Block("heading", "Next", 2),
        Block("paragraph", "spaced out"),
    ]


def test_blocks_from_html_survives_deep_nesting():
    html = "<div>" * 5000 + "<p>deep</p>" + "</div>" * 5000
    assert blocks_from_html(html) == [Block("paragraph", "deep")]


def test_blocks_from_text_splits_on_blank_lines():
    text = "first para\ncontinued\r\n\r\n  \nsecond\n\n\n\nthird  "
    assert blocks_from_text(text) == [
        Block("paragraph", "first para\ncontinued"),
        Block("paragraph", "second"),
        Block("paragraph", "third"),
    ]
