"""Structure-aware chunking of parsed documents, bounded in embedding-model tokens.

Connectors turn Markdown, HTML or plain text into `Block`s (`blocks_from_markdown`,
`blocks_from_html`, `blocks_from_text`); `chunk_blocks` cuts them into `TextChunk`s for embedding and
indexing. A chunk never crosses a heading, and its text starts with a short context line (document
title and heading path, "Handbook > Benefits > Parental leave") so the embedding knows what the
passage is about. Inside a section, small blocks are packed together; a block over budget is cut at
sentence ends (Latin `. ! ?`, CJK `。！？．` with closing quotes/brackets such as `」』）`, and line
breaks), and a sentence over budget (a CJK paragraph without punctuation, a minified line) is cut
by characters, at a space or a word edge when one is near. Consecutive chunks of one section share
about `overlap_tokens` tokens of trailing sentences, so a fact cut at a boundary survives whole in
one of them.

Budget. `count_tokens(chunk.text) <= max_tokens` always holds, measured on the exact chunk text,
context line included. `count_tokens` should count what the model sees of that text without special
tokens; the caller reserves room for the `passage: ` prefix and `<s>`/`</s>` (about 5 tokens with
the e5 tokenizer, so 256 + 5 stays far inside the 512 positions). Why 256 by default:
- multilingual-e5 has 512 positions, but it was fine-tuned on passage-length texts (MS MARCO
  passages, ~100-word Wikipedia passages), mostly well under 256 tokens: that is the unit it is
  trained to match against a query. Longer chunks average several topics into one vector, and a
  focused passage is also what a result page can show;
- self-attention cost grows with the square of the length: two 256-token chunks cost roughly half
  of one 512-token chunk, and the host embeds on two CPU cores, so ingest throughput matters;
- 256 still holds a typical wiki section or several paragraphs, so the heading context and
  `overlap_tokens` (32, one or two sentences) stay a small share of each chunk.

Cost. Sizes are estimated by summing per-piece counts and checked once per chunk with an exact
count; character cuts use a proportional search (a few count calls per cut, never one per
character), so the work stays linear in the input size.
"""

from __future__ import annotations

import re
import unicodedata
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from kbsearch.ingest.parsers import Block

CONTEXT_SEPARATOR = " > "
# A text this many times longer (in characters) than a budget is never counted whole: it is split
# first, which keeps one call from tokenizing megabytes. Few tokens are longer than this on average.
_MAX_CHARS_PER_TOKEN = 40


@dataclass(frozen=True)
class TextChunk:
    """A piece of a document sized for the embedding model (not the stored ``documents.Chunk``)."""

    ordinal: int
    text: str
    heading_path: list[str]
    token_count: int


@dataclass(frozen=True)
class _Piece:
    text: str
    tokens: int
    sep: str  # joins it to the piece before it in the same chunk
    sentences: tuple[_Piece, ...] = ()  # set when the piece is a whole block of several sentences
    overlap: bool = False  # repeated from the previous chunk


# --- sentences and character cuts -------------------------------------------------------------

_CLOSERS = "\"'”’」』）)\\]】〕》〉"
# Full-width terminators always end a sentence; ASCII ones only before a space, the end or a CJK
# character, and not after a lone digit pair or letter ("1. item", "e.g. this"), which would cut
# list markers and abbreviations.
_SENTENCE_END_RE = re.compile(
    f"(?:[。！？｡]+|(?<!\\b\\d)(?<!\\b\\d\\d)(?<!\\b[A-Za-z])[.!?．]+"
    f"(?=[{_CLOSERS}]*(?:\\s|$|[\\u3040-\\u30ff\\u3400-\\u9fff\\uac00-\\ud7a3])))[{_CLOSERS}]*|\\n"
)
_ASCII_WORD_RE = re.compile("[A-Za-z0-9]{2}")


def split_sentences(text: str) -> list[tuple[str, str]]:
    """(sentence, separator before it) pairs; separators are "", " " or "\\n" as in the text."""
    result: list[tuple[str, str]] = []
    gap = ""
    start = 0
    ends = [m.end() for m in _SENTENCE_END_RE.finditer(text)]
    for end in ends + [len(text)]:
        segment = text[start:end]
        start = end
        content = segment.strip()
        if not content:
            gap += segment
            continue
        gap += segment[: len(segment) - len(segment.lstrip())]
        result.append((content, "\n" if "\n" in gap else " " if gap else ""))
        gap = segment[len(segment.rstrip()) :]
    return result


def _longest_fitting(n_max: int, measure: Callable[[int], int], limit: int, guess: int) -> int:
    """A near-largest k in [0, n_max] with measure(k) <= limit (measure grows with k).

    Proportional probing (k * limit / count) from a guess converges in a few calls; the answer
    is accepted within ~3% of the limit, which is all a chunk boundary needs.
    """
    lo, hi = 0, n_max + 1
    k = min(max(1, guess), n_max)
    while hi - lo > 1:
        count = max(1, measure(k))
        if count <= limit:
            lo = k
            if k == n_max or count >= limit - max(1, limit // 32):
                break
        else:
            hi = k
        proposal = k * limit // count
        k = proposal if lo < proposal < hi else (lo + hi) // 2
        if k <= lo:
            break
    return lo


def _cut_position(text: str, start: int, end: int) -> int:
    """Move a cut at `end` back to a nicer boundary within the last quarter of text[start:end]."""
    if end >= len(text):
        return len(text)
    floor = start + (end - start) * 3 // 4
    space = max(text.rfind(" ", floor, end), text.rfind("\n", floor, end))
    if space > start:
        return space + 1
    cut = end
    while cut > floor and _ASCII_WORD_RE.match(text, cut - 1, cut + 1):
        cut -= 1  # do not halve an ASCII word embedded in CJK text
    if cut == floor:
        cut = end
    while cut > start + 1 and unicodedata.combining(text[cut]):
        cut -= 1  # keep a combining mark with its base character
    return cut


def _character_fragments(
    text: str, measure: Callable[[str], int], limit: int
) -> list[tuple[str, str, int]]:
    """Cut `text` into (fragment, separator before it, measure(fragment) <= limit) triples."""
    fragments: list[tuple[str, str, int]] = []
    start, guess = 0, limit * 2
    measured: dict[int, int] = {}

    def measure_prefix(size: int) -> int:
        measured[size] = measure(text[start : start + size])
        return measured[size]

    while start < len(text):
        measured.clear()
        size = _longest_fitting(len(text) - start, measure_prefix, limit, guess)
        if size == 0:
            raise ValueError(f"max_tokens leaves no room for {text[start:start + 20]!r}")
        cut = _cut_position(text, start, start + size)
        fragment = text[start:cut].strip()
        tokens = measured[size] if fragment == text[start : start + size] else measure(fragment)
        if tokens > limit:
            cut = start + size  # token counts need not shrink with the text: keep the measured cut
            fragment, tokens = text[start:cut], measured[size]
        if fragment:
            spaced = start > 0 and (text[start - 1].isspace() or text[start].isspace())
            fragments.append((fragment, " " if spaced else "", tokens))
        guess = size
        start = cut
    return fragments


# --- sections and context line ----------------------------------------------------------------


def _sections(blocks: Iterable[Block]) -> Iterator[tuple[list[str], list[Block]]]:
    """(heading path, body blocks) per section; a heading with no body or subsection yields []."""
    stack: list[tuple[int, str]] = []
    body: list[Block] = []
    headed = False  # the current section starts at a heading
    for block in blocks:
        if not isinstance(block, Block):
            raise TypeError(f"expected Block, got {type(block).__name__}")
        if block.kind != "heading":
            if block.text.strip():
                body.append(block)
            continue
        heading = " ".join(block.text.split())
        if not heading:
            continue
        level = max(1, block.level)
        if body or (headed and level <= stack[-1][0]):
            yield [h for _, h in stack], body
        body = []
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, heading))
        headed = True
    if body or headed:
        yield [h for _, h in stack], body


def _context_line(
    title: str, path: list[str], count_tokens: Callable[[str], int], budget: int
) -> str:
    """Title and heading path joined, shortened (outer headings first) to fit `budget` tokens."""
    title = " ".join(title.split())
    title_is_first_heading = bool(path) and path[0].casefold() == title.casefold()
    full = [title] + path if title and not title_is_first_heading else path
    for parts in (full, path, path[-2:], path[-1:]):
        line = CONTEXT_SEPARATOR.join(parts)
        if line and count_tokens(line) <= budget:
            return line
    last = (path or [title])[-1] if (path or title) else ""
    if not last:
        return ""
    for marker in ("…", ""):  # NFKC makes "…" three dots, which a tiny budget may not afford
        size = _longest_fitting(
            len(last), lambda k, marker=marker: count_tokens(last[:k] + marker), budget, budget
        )
        if size:
            return last[:size] + marker
    return ""


def context_line_split(text: str, *, title: str, heading_path: list[str]) -> tuple[str, str]:
    """A stored chunk's text as (context line, body); ("", text) when it does not start with one.

    The inverse of what `chunk_blocks` writes: the first line is the context line when it is one
    of the forms `_context_line` chooses for this title and heading path (whole, shortened to the
    inner headings, or the last heading cut short with "…"). A chunk of only a context line (a
    heading without body) gives an empty body.
    """
    first, newline, rest = text.partition("\n")
    title = " ".join(title.split())
    path = list(heading_path)
    title_is_first_heading = bool(path) and path[0].casefold() == title.casefold()
    full = [title] + path if title and not title_is_first_heading else path
    forms = {CONTEXT_SEPARATOR.join(parts) for parts in (full, path, path[-2:], path[-1:]) if parts}
    last = (path or [title])[-1] if (path or title) else ""
    # "..." is what NFKC makes of "…"; a cut with no room for the marker leaves a bare prefix.
    stem = first.removesuffix("…").removesuffix("...")
    if first and (first in forms or (stem and last.startswith(stem))):
        return first, rest if newline else ""
    return "", text


# --- packing ----------------------------------------------------------------------------------


class _SectionChunker:
    """Packs one section's blocks into chunk texts that fit the budget."""

    def __init__(
        self, context: str, count_tokens: Callable[[str], int], max_tokens: int, overlap_tokens: int
    ):
        self.context, self.count, self.max_tokens = context, count_tokens, max_tokens
        self.overlap_tokens = overlap_tokens
        self.context_tokens = count_tokens(context + "\n") if context else 0
        self.body_budget = max_tokens - self.context_tokens

    def compose(self, pieces: list[_Piece]) -> str:
        body = pieces[0].text + "".join(p.sep + p.text for p in pieces[1:])
        return f"{self.context}\n{body}" if self.context else body

    def _counted(self, text: str, budget: int) -> int | None:
        """Token count of `text`, or None when it is obviously far over `budget`."""
        return None if len(text) > budget * _MAX_CHARS_PER_TOKEN else self.count(text)

    def _fragments(self, text: str, sep: str, tokens: int | None = None) -> list[_Piece]:
        """Character cuts measured together with the context line, so each fits alone for sure.

        With the text's token count known, fragments are sized evenly (a 300-token sentence and a
        200-token limit give two of ~150, not 200 + 100), so no chunk is a sliver.
        """
        limit = self.max_tokens - self.overlap_tokens  # leaves room for the next chunk's overlap
        room = limit - self.context_tokens
        if tokens is not None and room > 0:
            pieces_needed = -(-tokens // room)
            limit = min(limit, self.context_tokens + -(-tokens // pieces_needed) + 2)

        def measure(fragment: str) -> int:
            return self.count(self.compose([_Piece(fragment, 0, "")]))

        return [
            _Piece(fragment, max(1, tokens - self.context_tokens), sep if i == 0 else fragment_sep)
            for i, (fragment, fragment_sep, tokens) in enumerate(
                _character_fragments(text, measure, limit)
            )
        ]

    def pieces(self, blocks: list[Block]) -> Iterator[_Piece]:
        """A block that fits whole is one piece; otherwise its sentences, cut further if needed.

        Each sentence is counted once and a block's size is estimated as their sum: the exact
        count of every chunk comes later anyway, when it is emitted.
        """
        sentence_budget = self.body_budget - self.overlap_tokens
        for block in blocks:
            text = block.text.strip()
            sentences = [
                (sentence, "\n" if i == 0 else sep, self._counted(sentence, self.body_budget))
                for i, (sentence, sep) in enumerate(split_sentences(text))
            ]
            if all(tokens is not None for _, _, tokens in sentences):
                parts = tuple(_Piece(part, tokens, sep) for part, sep, tokens in sentences)
                total = sum(part.tokens for part in parts)
                if total <= self.body_budget:
                    yield _Piece(text, total, "\n", parts if len(parts) > 1 else ())
                    continue
            for sentence, sep, tokens in sentences:
                if tokens is not None and tokens <= sentence_budget:
                    yield _Piece(sentence, tokens, sep)
                else:
                    yield from self._fragments(sentence, sep, tokens)

    def _overlap(self, emitted: list[_Piece]) -> list[_Piece]:
        """Trailing sentences of an emitted chunk worth about `overlap_tokens` tokens.

        At most half of the chunk is repeated, so a short chunk is never swallowed by the next one.
        """
        limit = min(self.overlap_tokens, sum(p.tokens for p in emitted) // 2)
        taken: list[_Piece] = []
        total = 0
        for piece in reversed(emitted):
            for sentence in reversed(piece.sentences or (piece,)):
                text = sentence.text
                if total + sentence.tokens <= limit:
                    taken.insert(0, _Piece(text, sentence.tokens, sentence.sep, overlap=True))
                    total += sentence.tokens
                    continue
                if not taken and limit:  # the last sentence alone is too long: take its tail
                    size = _longest_fitting(
                        len(text), lambda k, text=text: self.count(text[len(text) - k :]), limit, limit
                    )
                    tail = text[len(text) - size :]
                    space = tail.find(" ")
                    tail = (tail[space + 1 :] if 0 <= space < len(tail) // 4 else tail).strip()
                    if tail:
                        taken.append(_Piece(tail, self.count(tail), " ", overlap=True))
                return taken
        return taken

    def chunks(self, blocks: list[Block]) -> Iterator[tuple[str, int]]:
        queue: deque[_Piece] = deque(self.pieces(blocks))
        current: list[_Piece] = []
        while True:
            estimate = sum(p.tokens for p in current)
            has_new = False
            while queue and (not has_new or estimate + queue[0].tokens <= self.body_budget):
                # The first new piece always goes in (after trimming overlap); _emit checks it.
                piece = queue.popleft()
                while current and not has_new and estimate + piece.tokens > self.body_budget:
                    estimate -= current.pop(0).tokens  # overlap that leaves no room for new text
                current.append(piece)
                estimate += piece.tokens
                has_new = True
            if not has_new:
                return
            emitted = self._emit(current, queue)
            current = []
            if emitted is not None:
                text, tokens, group = emitted
                yield text, tokens
                if self.overlap_tokens and queue:
                    current = self._overlap(group)

    def _emit(
        self, current: list[_Piece], queue: deque[_Piece]
    ) -> tuple[str, int, list[_Piece]] | None:
        """Emit the longest head of `current` that really fits; return the rest to `queue`.

        Counts are additive estimates, so the exact count of the joined text can exceed them.
        """
        first_new = next(i for i, p in enumerate(current) if not p.overlap)
        for end in range(len(current), first_new, -1):
            for start in ((0, first_new) if end == first_new + 1 and first_new else (0,)):
                text = self.compose(current[start:end])
                tokens = self.count(text)
                if tokens <= self.max_tokens:
                    queue.extendleft(reversed(current[end:]))
                    return text, tokens, current[start:end]
        # One piece does not fit next to the context line: cut a block into sentences, a sentence
        # by characters with exact counts (those fragments always fit, so this terminates).
        piece = current[first_new]
        if piece.sentences:
            smaller = list(piece.sentences)
        else:
            smaller = self._fragments(piece.text, piece.sep)
        queue.extendleft(reversed(current[first_new + 1 :]))
        queue.extendleft(reversed(smaller))
        return None


def chunk_blocks(
    blocks: Iterable[Block],
    *,
    count_tokens: Callable[[str], int],
    max_tokens: int = 256,
    overlap_tokens: int = 32,
    title: str = "",
) -> list[TextChunk]:
    """Cut a parsed document into chunks of at most `max_tokens` tokens (see module docstring).

    `count_tokens` must count the tokens of a text as the embedding model will see it, without
    special tokens or the `passage: ` prefix, for which the caller reserves room.
    """
    if max_tokens < 16:
        raise ValueError(f"max_tokens must be at least 16, got {max_tokens}")
    if not 0 <= overlap_tokens <= max_tokens // 4:
        raise ValueError(f"overlap_tokens must be in [0, max_tokens // 4], got {overlap_tokens}")
    chunks: list[TextChunk] = []
    for path, body in _sections(blocks):
        context = _context_line(title, path, count_tokens, max_tokens // 4)
        if not body:
            if context:
                chunks.append(TextChunk(len(chunks), context, path, count_tokens(context)))
            continue
        section = _SectionChunker(context, count_tokens, max_tokens, overlap_tokens)
        for text, tokens in section.chunks(body):
            chunks.append(TextChunk(len(chunks), text, list(path), tokens))
    return chunks
