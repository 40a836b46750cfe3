"""Parsing documents into ``Block``s (headings, paragraphs, lists, code, tables) for the chunker.

Markdown goes through markdown-it, HTML through BeautifulSoup's built-in parser (scripts, styles and
navigation dropped), plain text splits into paragraphs at blank lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from bs4 import BeautifulSoup, NavigableString, Tag
from bs4.element import PreformattedString
from markdown_it import MarkdownIt

BLOCK_KINDS = frozenset({"heading", "paragraph", "list", "code", "table"})
_CJK_CHAR_RE = re.compile("[\\u3000-\\u30ff\\u3400-\\u9fff\\uac00-\\ud7a3\\uff00-\\uffef]")
_MARKDOWN = MarkdownIt("commonmark").enable("table")


@dataclass(frozen=True)
class Block:
    """One structural unit of a parsed document; `level` is 1-6 for headings, else 0."""

    kind: str
    text: str
    level: int = 0

    def __post_init__(self) -> None:
        if self.kind not in BLOCK_KINDS:
            raise ValueError(f"unknown block kind {self.kind!r}; expected {sorted(BLOCK_KINDS)}")
        if not isinstance(self.text, str):
            raise TypeError(f"block text must be str, got {type(self.text).__name__}")


def _join_soft_break(left: str, right: str) -> str:
    # A wrapped line in CJK text must not gain a space that was never written.
    both_cjk = left and right and _CJK_CHAR_RE.match(left[-1]) and _CJK_CHAR_RE.match(right[0])
    return left + ("" if both_cjk else " ") + right


def _markdown_inline(token) -> str:  # markdown_it.token.Token
    text = ""
    for child in token.children or []:
        if child.type in ("text", "code_inline", "image"):  # an image's content is its alt text
            text += child.content
        elif child.type == "softbreak":
            text = text.rstrip() + "\x00"
        elif child.type == "hardbreak":
            text += "\n"
    parts = text.split("\x00")
    joined = parts[0]
    for part in parts[1:]:
        joined = _join_soft_break(joined, part.lstrip())
    return joined.strip()


def blocks_from_markdown(text: str) -> list[Block]:
    """Blocks of a CommonMark document with tables; raw HTML blocks are parsed as HTML."""
    blocks: list[Block] = []
    opener = None  # the *_open token an inline token belongs to
    list_depth, list_lines, marker = 0, [], ""
    row: list[str] = []
    rows: list[str] = []
    for token in _MARKDOWN.parse(text):
        kind = token.type
        if kind == "inline":
            content = _markdown_inline(token)
            if opener is not None and opener.type == "heading_open":
                blocks.append(Block("heading", content, int(opener.tag[1:])))
            elif opener is not None and opener.type in ("th_open", "td_open"):
                row.append(content)
            elif list_depth:
                list_lines.append("  " * (list_depth - 1) + (marker or " ") + " " + content)
                marker = ""
            elif content:
                blocks.append(Block("paragraph", content))
        elif kind.endswith("_open"):
            opener = token
            if kind in ("bullet_list_open", "ordered_list_open"):
                list_depth += 1
            elif kind == "list_item_open":
                marker = f"{token.info}{token.markup}"
        elif kind in ("bullet_list_close", "ordered_list_close"):
            list_depth -= 1
            if list_depth == 0 and list_lines:
                blocks.append(Block("list", "\n".join(list_lines)))
                list_lines = []
        elif kind == "tr_close":
            rows.append(" | ".join(row))
            row = []
        elif kind == "table_close":
            blocks.append(Block("table", "\n".join(rows)))
            rows = []
        elif kind in ("fence", "code_block"):
            code = token.content.rstrip("\n")
            if list_depth:
                list_lines.extend("  " * list_depth + line for line in code.split("\n"))
            elif code.strip():
                blocks.append(Block("code", code))
        elif kind == "html_block":
            blocks.extend(blocks_from_html(token.content))
    return blocks


_DROPPED_TAGS = ["script", "style", "nav", "noscript", "template", "head"]
_HEADINGS = {f"h{i}": i for i in range(1, 7)}
_BR = "\ue000"  # private-use stand-in for <br> while source newlines are collapsed
_CONTAINERS = frozenset(
    "html body main article section div header footer aside blockquote figure figcaption form "
    "fieldset details summary address center dl dd dt li".split()
)
_BLOCK_TAGS = sorted(_CONTAINERS | set(_HEADINGS) | {"p", "ul", "ol", "pre", "table", "hr"})


def _html_text(tag: Tag) -> str:
    """Text with whitespace collapsed as a browser does; only <br> breaks a line."""
    for br in tag.find_all("br"):
        br.replace_with(_BR)
    lines = (" ".join(line.split()) for line in tag.get_text().split(_BR))
    return "\n".join(line for line in lines if line)


def _html_list(tag: Tag, depth: int = 0) -> list[str]:
    lines: list[str] = []
    for number, item in enumerate(tag.find_all("li", recursive=False), start=1):
        nested = item.find_all(["ul", "ol"], recursive=False)
        for sub in nested:
            sub.extract()
        marker = f"{number}." if tag.name == "ol" else "-"
        lines.append("  " * depth + f"{marker} {' '.join(_html_text(item).split())}")
        for sub in nested:
            lines.extend(_html_list(sub, depth + 1))
    return lines


def blocks_from_html(html: str) -> list[Block]:
    """Blocks of an HTML page (html.parser); script, style, nav and similar chrome is dropped."""
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup.find_all(_DROPPED_TAGS):
        tag.decompose()
    blocks: list[Block] = []
    loose: list[str] = []  # inline text directly inside a container

    def flush_loose() -> None:
        text = " ".join("".join(loose).split())
        if text:
            blocks.append(Block("paragraph", text))
        loose.clear()

    # An explicit stack instead of recursion: pages can nest thousands of elements deep.
    stack: list[Iterator] = [iter(list(soup.children))]
    while stack:
        node = next(stack[-1], None)
        if node is None:
            stack.pop()
            flush_loose()
        elif isinstance(node, PreformattedString):
            continue  # comments, doctype, CDATA
        elif isinstance(node, NavigableString):
            loose.append(str(node))
        elif not isinstance(node, Tag):
            continue
        elif node.name in _CONTAINERS or (node.name not in _BLOCK_TAGS and node.find(_BLOCK_TAGS)):
            flush_loose()
            stack.append(iter(list(node.children)))
        elif node.name not in _BLOCK_TAGS:
            loose.append(node.get_text())
        else:
            flush_loose()
            if node.name in _HEADINGS:
                heading = " ".join(node.get_text().split())
                blocks.append(Block("heading", heading, _HEADINGS[node.name]))
            elif node.name == "p":
                blocks.append(Block("paragraph", _html_text(node)))
            elif node.name in ("ul", "ol"):
                blocks.append(Block("list", "\n".join(_html_list(node))))
            elif node.name == "pre":
                blocks.append(Block("code", node.get_text().strip("\n")))
            elif node.name == "table":
                cells = (tr.find_all(["th", "td"]) for tr in node.find_all("tr"))
                rows = [" | ".join(" ".join(c.get_text().split()) for c in row) for row in cells]
                blocks.append(Block("table", "\n".join(row for row in rows if row.strip(" |"))))
    return [block for block in blocks if block.text.strip()]


def blocks_from_text(text: str) -> list[Block]:
    """Paragraph blocks of plain text, separated by blank lines."""
    paragraphs = re.split(r"\n[ \t\r\f\v]*\n", text.replace("\r\n", "\n").replace("\r", "\n"))
    return [Block("paragraph", p.strip()) for p in paragraphs if p.strip()]
