"""Snippets: the part of a chunk that best shows why it matched, with the matched terms marked.

Matching must agree with the BM25 analyzer, or the page would mark words that did not match and
miss ones that did. So this module never re-implements the analyzer's rules: it only finds token
boundaries in the original text (keeping offsets into it, which the analyzer's normalisation
loses) and asks ``kbsearch.text.analysis.index_terms`` what each token means. A CJK run yields
one bigram per adjacent pair of characters, so a query bigram marks exactly those two characters,
and overlapping or touching marks (``数据`` + ``据库``) are merged into one span (``数据库``).

A lone bigram of a longer query word is a real BM25 match but reads as noise when marked
(``パス`` inside ``パスフレーズ`` for the query ``パスワード``), so a CJK mark must span at least
three characters, unless it is a whole two-character query word (``报销``). Snippets of CJK text get fewer
characters than Latin text, since each character carries about as much as a short word.

Offsets are in code points. ``Highlighted.html()`` escapes the text and wraps spans in ``<mark>``,
so callers never build HTML from document text themselves.
"""
from __future__ import annotations

import bisect
import html
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from kbsearch.text.analysis import index_terms, query_terms

SNIPPET_CHARS = 240
# The shortest CJK run worth marking, unless it is a whole query word.
_CJK_MIN_MARK = 3
# How much text to show before the first match of a window, so the match has some context.
_LEAD_CHARS = 40
# How far to look for a space or sentence end when trimming a window, so words are not cut.
_SNAP_CHARS = 24
# Enough matches to choose a good window; more only costs time on pathological text.
_MAX_MATCHES = 400
_APOSTROPHES = "'\u2019\u02bc"
_BOUNDARIES = " \t\n\r.,;:!?\u3001\u3002\uff01\uff1f\uff0c\uff1b\uff1a"
_ELLIPSIS = "\u2026"
# Maximal runs of anything but whitespace and ASCII punctuation (the apostrophe excepted).
_SEGMENT_RE = re.compile(r"[^\s!\"#$%&()*+,\-./:;<=>?@\[\\\]^_`{|}~]+")


@dataclass(frozen=True)
class Highlighted:
    """A piece of text and the sorted, non-overlapping spans to mark in it."""

    text: str
    spans: tuple[tuple[int, int], ...]

    def html(self) -> str:
        parts, cursor = [], 0
        for start, end in self.spans:
            parts.append(html.escape(self.text[cursor:start]))
            parts.append(f"<mark>{html.escape(self.text[start:end])}</mark>")
            cursor = end
        parts.append(html.escape(self.text[cursor:]))
        return "".join(parts)


@dataclass(frozen=True)
class HighlightTerms:
    """What to mark for one query: its analyzed terms, and its CJK words too short to need a run."""

    terms: frozenset[str]
    short_cjk_words: frozenset[str] = frozenset()


NO_TERMS = HighlightTerms(frozenset())


def highlight_terms(query: str) -> HighlightTerms:
    """The query's terms as the index matched them (stopwords dropped likewise)."""
    short = {
        term
        for kind, start, end, positions in _tokens(query)
        if kind == "cjk" and len(positions) < _CJK_MIN_MARK
        for term in index_terms(query[start:end])
    }
    return HighlightTerms(frozenset(query_terms(query)), frozenset(short))


@lru_cache(maxsize=8192)
def _char_kind(ch: str) -> str:
    """'join' (deleted by the analyzer), 'cjk', 'word' or 'sep', decided by the analyzer itself.

    Wrapping it in Latin letters tells the kinds apart without copying the analyzer's character
    ranges: a word character joins them into one term ("xbx"), a CJK character is a run of its own
    between them (["x", "数", "x"]), a separator leaves two. The wrapping letters end the word, so
    suffix rules such as plural folding cannot blur the count. Apostrophes are only inside words
    between letters, which ``_scan`` decides.
    """
    if unicodedata.category(ch) in ("Mn", "Mc", "Me", "Cf"):
        return "join"
    if ch in _APOSTROPHES:
        return "sep"
    count = len(index_terms(f"x{ch}x"))
    return {1: "word", 3: "cjk"}.get(count, "sep")


def _tokens(text: str):
    """(kind, start, end, positions) of each word or CJK run; positions: the run's CJK characters."""
    # Whitespace and ASCII punctuation always separate, so cutting there first lets plain ASCII
    # words skip the per-character loop, which is most of English text.
    for segment in _SEGMENT_RE.finditer(text):
        start, end = segment.span()
        if text[start:end].isascii() and text[start:end].isalnum():
            yield "word", start, end, []
        else:
            yield from _scan(text, start, end)


def _scan(text: str, i: int, length: int):
    """The tokens of text[i:length], character by character."""
    while i < length:
        kind = _char_kind(text[i])
        if kind not in ("word", "cjk"):
            i += 1
            continue
        start, positions = i, []
        while i < length:
            ch = text[i]
            current = _char_kind(ch)
            if current == kind:
                positions.append(i)
            elif current == "join" or (
                kind == "word" and ch in _APOSTROPHES and i + 1 < length and _char_kind(text[i + 1]) == "word"
            ):
                pass  # inside the token: marks and format characters, or an inner apostrophe
            else:
                break
            i += 1
        yield kind, start, i, positions


@lru_cache(maxsize=65536)
def _token_terms(token: str) -> tuple[str, ...]:
    # Words recur across results and requests; analysing each distinct one once is most of the saving.
    return tuple(index_terms(token))


def _cjk_runs(positions: list[int], token_terms: tuple[str, ...], query: HighlightTerms):
    """(start, end, term) per run of consecutive matched bigrams long enough to mark."""
    k, count = 0, len(token_terms)
    while k < count:
        if token_terms[k] not in query.terms:
            k += 1
            continue
        first = k
        while k + 1 < count and token_terms[k + 1] in query.terms:
            k += 1
        # Bigrams first..k cover characters first..k+1.
        if k - first + 2 >= _CJK_MIN_MARK or (first == k and token_terms[k] in query.short_cjk_words):
            yield positions[first], positions[k + 1] + 1, token_terms[first]
        k += 1


def _matches(text: str, query: HighlightTerms) -> list[tuple[int, int, str]]:
    """(start, end, term) of every matched word or CJK run, in text order."""
    found: list[tuple[int, int, str]] = []
    terms = query.terms
    if not terms:
        return found
    for kind, start, end, positions in _tokens(text):
        token_terms = _token_terms(text[start:end])
        if kind == "cjk" and len(positions) > 1 and len(token_terms) == len(positions) - 1:
            found.extend(_cjk_runs(positions, token_terms, query))
        else:
            hit = next((term for term in token_terms if term in terms), None)
            if hit is not None:
                found.append((start, end, hit))
        if len(found) >= _MAX_MATCHES:
            break
    return found


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _best_window(matches: list[tuple[int, int, str]], length: int, width: int) -> tuple[int, int]:
    """The window of ``width`` characters holding the most distinct terms, then the most matches."""
    if length <= width:
        return 0, length
    if not matches:
        return 0, width
    starts = [m[0] for m in matches]
    best, best_score = (0, width), (-1, -1)
    for first in matches:
        window_start = max(0, min(first[0] - _LEAD_CHARS, length - width))
        window_end = window_start + width
        lo = bisect.bisect_left(starts, window_start)
        inside = [m for m in matches[lo:] if m[1] <= window_end] if lo < len(matches) else []
        score = (len({m[2] for m in inside}), len(inside))
        if score > best_score:
            best, best_score = (window_start, window_end), score
    return best


def _snap(text: str, start: int, end: int, keep_from: int, keep_to: int) -> tuple[int, int]:
    """Move window edges to a nearby space or sentence end, never cutting into [keep_from, keep_to)."""
    if start > 0:
        for i in range(start, min(start + _SNAP_CHARS, keep_from, len(text))):
            if text[i] in _BOUNDARIES:
                start = i + 1
                break
    if end < len(text):
        for i in range(end - 1, max(end - _SNAP_CHARS, keep_to, start), -1):
            if text[i] in _BOUNDARIES:
                end = i + 1 if text[i] not in " \t\n\r" else i
                break
    return start, end


def _compact(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> Highlighted:
    """text[start:end] with whitespace runs collapsed to one space, spans moved along."""
    out: list[str] = []
    position: dict[int, int] = {}
    for i in range(start, end):
        position[i] = len(out)
        ch = text[i]
        if ch.isspace():
            if out and out[-1] != " ":
                out.append(" ")
        else:
            out.append(ch)
    position[end] = len(out)
    compact = "".join(out)
    stripped = compact.lstrip()
    shift = len(compact) - len(stripped)
    stripped = stripped.rstrip()
    moved = []
    for span_start, span_end in spans:
        a = max(0, position[span_start] - shift)
        b = min(len(stripped), position[span_end] - shift)
        if a < b:
            moved.append((a, b))
    return Highlighted(stripped, tuple(moved))


def _window_chars(text: str, max_chars: int) -> int:
    """``max_chars`` for Latin text, down to half of it for all-CJK text (sampled, for speed)."""
    sample = text[:2000]
    letters = [kind for kind in map(_char_kind, sample) if kind in ("cjk", "word")]
    cjk_share = letters.count("cjk") / len(letters) if letters else 0.0
    return max(1, round(max_chars / (1.0 + cjk_share)))


def highlight_snippet(text: str, query: HighlightTerms, *, max_chars: int = SNIPPET_CHARS) -> Highlighted:
    """The best window of ``text`` for ``query`` (about ``max_chars`` long), matches marked.

    With no match (a result found by meaning only) the snippet is the start of the text.
    """
    matches = _matches(text, query)
    start, end = _best_window(matches, len(text), _window_chars(text, max_chars))
    inside = [(a, b) for a, b, _ in matches if a >= start and b <= end]
    if inside:
        start, end = _snap(text, start, end, inside[0][0], inside[-1][1])
    else:
        start, end = _snap(text, start, end, end, start)
    snippet = _compact(text, start, end, _merge(inside))
    prefix = _ELLIPSIS if start > 0 and snippet.text else ""
    suffix = _ELLIPSIS if end < len(text) and snippet.text else ""
    if not prefix and not suffix:
        return snippet
    shifted = tuple((a + len(prefix), b + len(prefix)) for a, b in snippet.spans)
    return Highlighted(prefix + snippet.text + suffix, shifted)


def highlight_all(text: str, query: HighlightTerms) -> Highlighted:
    """All of ``text`` with every match marked (titles, documents)."""
    return Highlighted(text, tuple(_merge([(a, b) for a, b, _ in _matches(text, query)])))
