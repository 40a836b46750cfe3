"""The BM25 analyzer: one definition of lexical terms for every search backend.

The embedded index and the Weaviate backend both receive token streams produced here (joined by
spaces, indexed with whitespace tokenization), so what counts as a match is decided in this module
only, and index and query always agree.

Pipeline
1. Unicode NFKC, then casefold. NFKC folds full-width Latin (``ＶＰＮ`` -> ``VPN``), half-width
   katakana, ligatures, circled and superscript digits; casefold is the Unicode-complete lowercase
   (``ß`` -> ``ss``).
2. Invisible and decorative code points are deleted: format characters (zero-width space/joiners,
   soft hyphen, BOM, bidi marks), variation selectors and combining marks that NFKC could not
   compose into a letter. Deleting (rather than splitting on) them keeps ``data\\u200bbase`` and
   zalgo text as one word instead of producing one-letter fragments. Control characters, lone
   surrogates (e.g. from ``surrogateescape`` decoding), private-use code points, emoji and other
   symbols are separators.
3. Words: runs of letters and digits of non-CJK scripts (Latin, Cyrillic, Greek, ...). Everything
   else separates, so ``COVID-19`` -> ``covid``, ``19`` and ``snake_case`` -> ``snake``, ``case``.
   Apostrophes inside a word: an English possessive ``'s`` is dropped (``Google's`` -> ``google``,
   like Lucene's EnglishPossessiveFilter) and other apostrophes are removed (``don't`` -> ``dont``,
   ``O'Reilly`` -> ``oreilly``). Splitting instead would leave junk terms ``s``/``t`` and make the
   possessive form miss the bare name, the common case in a knowledge base. Terms longer than
   ``MAX_TERM_LENGTH`` (base64, minified code) are cut into pieces of that length, as Lucene does.
4. CJK runs (Han, Hiragana, Katakana, Hangul, adjacent ones joined) become overlapping character
   bigrams; a run of a single character becomes a unigram. ``数据库`` -> ``数据``, ``据库``.
5. English plural folding only (Lucene's EnglishMinimalStemmer, the "S-stemmer"): ``policies`` ->
   ``policy``, ``passwords`` -> ``password``, while ``status``, ``class`` and ``shoes`` stay. It is
   applied to ASCII words of four letters or more. Measured with plain BM25 on the shared xquad-en
   set (1,190 questions): nDCG@10 0.962 -> 0.968, Recall@10 0.991 -> 0.994. A full stemmer
   (Porter) conflates far more (``university``/``universe``) for little extra gain in a knowledge
   base full of product names; Weaviate's own tokenizers do not stem, but the backends index these
   already-analyzed terms, so the choice is ours and stays consistent across backends.

Why bigrams for CJK: Chinese and Japanese have no spaces and Korean attaches particles to words
(``회사에서``), so a word index needs a dictionary segmenter (jieba, MeCab/Kuromoji, mecab-ko), one
per language, with its own dictionary to ship and keep current, and it still mis-segments unknown
words: product names, people, internal jargon, exactly what enterprise search is asked for. Bigrams
need no dictionary and find any word of two or more characters wherever it occurs (``数据`` inside
``数据库`` and ``大数据``, ``テスト`` inside ``テストケース``, ``회사`` inside ``회사에서``), at the cost
of some precision that BM25's phrase-like bigram overlap largely recovers. This is what Lucene's
CJKAnalyzer and Elasticsearch's ``cjk`` analyzer do (CJKBigramFilter, unigrams only for isolated
characters). Known limit, shared with them: a one-character query only matches isolated characters;
the vector side of hybrid search covers such queries.
"""


from __future__ import annotations

import itertools
import re
import unicodedata

from kbsearch.text.query import require_str

# Bump when the terms this module produces change: indexes built by another version need rebuilding.
ANALYZER_VERSION = 2

MAX_TERM_LENGTH = 128

# Weaviate's "en" stopword preset (the classic Lucene English list).
ENGLISH_STOPWORDS: frozenset[str] = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then "
    "there these they this to was will with".split()
)


def _fold_plural(word: str) -> str:
    """English plural folding, the rules of Lucene's EnglishMinimalStemmer (Harman's S-stemmer)."""
    if len(word) < 4 or word[-1] != "s" or not word.isascii() or not word.isalpha():
        return word
    before = word[-2]
    if before in "us":  # status, class
        return word
    if before == "e":
        if word[-3] == "i" and word[-4] not in "ae":  # policies -> policy
            return word[:-3] + "y"
        if word[-3] in "iaoe":  # shoes, trees
            return word
    return word[:-1]


# Stopwords as they come out of the analyzer ("this" is folded to "thi").
_STOP_TERMS = frozenset(_fold_plural(word) for word in ENGLISH_STOPWORDS)

# Ranges after NFKC (half-width and compatibility forms are already folded). Iteration marks and
# the prolonged sound mark are letters of the word; the katakana middle dot is punctuation.
_CJK_BMP = (
    "\u1100-\u11ff\u3005-\u3007\u3021-\u3029\u3031-\u3035\u3038-\u303c"
    "\u3041-\u3096\u309d-\u309f\u30a1-\u30fa\u30fc-\u30ff\u3131-\u318e\u31f0-\u31ff"
    "\u3400-\u4dbf\u4e00-\u9fff\ua960-\ua97f\uac00-\ud7a3\ud7b0-\ud7ff\uf900-\ufaff"
)
_CJK_ASTRAL = "\U0001b000-\U0001b16f\U00020000-\U0003134f"
_APOSTROPHES = "'\u2019\u02bc"


def _term_pattern(cjk: str) -> re.Pattern[str]:
    """A CJK run, or a word: non-CJK alphanumerics, possibly joined by inner apostrophes."""
    letter = f"[^\\W_{cjk}]"
    return re.compile(f"([{cjk}]+)|({letter}+(?:[{_APOSTROPHES}]{letter}+)*)")


def _ignorable_pattern(astral: bool) -> re.Pattern[str]:
    """Code points deleted before tokenization: marks and format characters (see docstring)."""
    # They live in planes 0, 1 and 14 only. Surrogates are separators (and cannot be compiled).
    if astral:
        candidates = itertools.chain(range(0x10000, 0x20000), range(0xE0000, 0xE1000))
    else:
        candidates = itertools.chain(range(0xD800), range(0xE000, 0x10000))
    ranges: list[list[int]] = []
    for code_point in candidates:
        if unicodedata.category(chr(code_point)) in ("Mn", "Mc", "Me", "Cf"):
            if ranges and ranges[-1][1] == code_point - 1:
                ranges[-1][1] = code_point
            else:
                ranges.append([code_point, code_point])
    body = "".join(f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in ranges)
    return re.compile(f"[{body}]+")


# Character classes with code points beyond the BMP make the regex engine test every character
# against a list of ranges (3-20x slower), so BMP-only patterns serve text without such characters
# and the complete ones are used only when the text has some (emoji, rare Han extensions).
_TERM_BMP_RE = _term_pattern(_CJK_BMP)
_TERM_FULL_RE = _term_pattern(_CJK_BMP + _CJK_ASTRAL)
_IGNORABLE_BMP_RE = _ignorable_pattern(astral=False)
_IGNORABLE_ASTRAL_RE = _ignorable_pattern(astral=True)
_ASTRAL_RE = re.compile("[\U00010000-\U0010ffff]")
_APOSTROPHE_RE = re.compile(f"[{_APOSTROPHES}]")
_POSSESSIVE_RE = re.compile(f"[{_APOSTROPHES}]s$")


def _normalized_terms(text: str) -> list[tuple[str, str]]:
    """(cjk_run, word) pairs of the normalized text, exactly one of the two non-empty."""
    # Casefold may decompose (U+0130 -> i + combining dot), so marks are deleted after it.
    folded = _IGNORABLE_BMP_RE.sub("", unicodedata.normalize("NFKC", text).casefold())
    if _ASTRAL_RE.search(folded) is None:
        return _TERM_BMP_RE.findall(folded)
    return _TERM_FULL_RE.findall(_IGNORABLE_ASTRAL_RE.sub("", folded))


def _split_long(term: str) -> list[str]:
    return [term[i : i + MAX_TERM_LENGTH] for i in range(0, len(term), MAX_TERM_LENGTH)]


def index_terms(text: str) -> list[str]:
    """All terms of `text` in order, with repetition (term frequency counts for BM25)."""
    require_str(text)
    terms: list[str] = []
    append = terms.append
    extend = terms.extend
    for cjk_run, word in _normalized_terms(text):
        if cjk_run:
            if len(cjk_run) == 1:
                append(cjk_run)
            else:
                # Overlapping character bigrams: zip the run with itself shifted by one.
                extend(map(str.__add__, cjk_run, cjk_run[1:]))
            continue
        if "'" in word or "\u2019" in word or "\u02bc" in word:
            word = _APOSTROPHE_RE.sub("", _POSSESSIVE_RE.sub("", word))
            if not word:  # U+02BC is a letter to the regex, so a word can be only apostrophes
                continue
        if len(word) > MAX_TERM_LENGTH:
            extend(_split_long(word))
        else:
            append(_fold_plural(word))
    return terms


def chunk_terms(*, title: str, text: str) -> list[str]:
    """The terms a chunk is indexed with: its document's title, then its own text.

    Every path that writes chunks to an index (ingest, rebuild, evaluation) uses this, so a title
    word matches the same way whichever path wrote the chunk.
    """
    return index_terms(f"{title}\n{text}")


def query_terms(text: str) -> list[str]:
    """Distinct terms of a query in first-occurrence order, English stopwords removed.

    A query made only of stopwords ("to be or not to be") keeps them, since dropping them would
    leave nothing to search.
    """
    distinct = list(dict.fromkeys(index_terms(text)))
    content = [term for term in distinct if term not in _STOP_TERMS]
    return content or distinct


def analyzed_text(terms: list[str]) -> str:
    """Join terms with single spaces, the form the backends index with whitespace tokenization.

    Raises ValueError if a term is empty or contains whitespace, which would silently change the
    term stream on the backend side.
    """
    joined = " ".join(terms)
    # Splitting the joined text gives back exactly the terms iff none is empty or holds whitespace.
    if joined.split() != list(terms):
        bad = next(term for term in terms if term.split() != [term])
        raise ValueError(f"term {bad!r} is empty or contains whitespace")
    return joined
