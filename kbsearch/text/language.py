"""Script-based language identification for chunks and queries.

The search core only needs to tell apart the four languages of the knowledge base (English,
Chinese, Japanese, Korean), and for those the writing system is decisive, so this module counts
characters per script instead of running a statistical language model:

* Hiragana/Katakana are written only in Japanese, so a meaningful share of kana among the Han+kana
  characters means Japanese even when most characters are kanji.
* Hangul means Korean (Korean text may quote Han characters, so Hangul only has to dominate them).
* Han characters without kana mean Chinese.
* Latin letters (any Latin-script language, full-width forms included) are reported as 'en': the
  knowledge base's only Latin-script language and the one the English analyzer serves.
* Text without any of these letters (digits, punctuation, emoji), or dominated by letters of other
  scripts (Cyrillic, Greek, Arabic...), is 'und'.

Each CJK character is weighted as three Latin letters when deciding between a CJK language and 'en':
a Chinese word is one or two characters, an English word five or six letters, so raw counts would
label a Chinese page that quotes English product names and code as English.

Everything is done with compiled character-class regexes (about 3 ms per 100 KB), because
`detect_language` runs per chunk at ingest and `query_languages` per query.
"""

from __future__ import annotations

import re

from kbsearch.text.query import require_str

ENGLISH = "en"
CHINESE = "zh"
JAPANESE = "ja"
KOREAN = "ko"
UNDETERMINED = "und"
ALL_LANGUAGES: frozenset[str] = frozenset({ENGLISH, CHINESE, JAPANESE, KOREAN, UNDETERMINED})

_HAN = "\u3005\u3007\u3021-\u3029\u3038-\u303b\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_HAN_ASTRAL = "\U00020000-\U0003134f"
_KANA = "\u3041-\u3096\u309d-\u309f\u30a1-\u30fa\u30fc-\u30ff\u31f0-\u31ff\uff66-\uff9f"
_KANA_ASTRAL = "\U0001b000-\U0001b16f"
_HANGUL = "\u1100-\u11ff\u3131-\u318e\ua960-\ua97f\uac00-\ud7a3\ud7b0-\ud7ff\uffa0-\uffdc"
# Latin letters incl. accented ranges and full-width forms; digits are deliberately not letters.
_LATIN = "A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u1e00-\u1eff\uff21-\uff3a\uff41-\uff5a"

# Classes with code points beyond the BMP are several times slower to match, so counting for
# detect_language uses BMP-only classes (astral Han and kana are too rare to change a verdict) and
# the short queries get the complete ones.
_HAN_RE = re.compile(f"[{_HAN}]+")
_KANA_RE = re.compile(f"[{_KANA}]+")
_ANY_HAN_RE = re.compile(f"[{_HAN}{_HAN_ASTRAL}]")
_ANY_KANA_RE = re.compile(f"[{_KANA}{_KANA_ASTRAL}]")
_HANGUL_RE = re.compile(f"[{_HANGUL}]+")
_LATIN_RE = re.compile(f"[{_LATIN}]+")
# Any other letter (Cyrillic, Greek, Arabic...): \w minus digits, underscore and the scripts above.
_OTHER_LETTER_RE = re.compile(f"[^\\W\\d_{_HAN}{_KANA}{_HANGUL}{_LATIN}]+")
_ANY_OTHER_LETTER_RE = re.compile(
    f"[^\\W\\d_{_HAN}{_HAN_ASTRAL}{_KANA}{_KANA_ASTRAL}{_HANGUL}{_LATIN}]"
)
_DIGIT_RE = re.compile(r"\d")

# A CJK character carries about as much content as a short Latin word.
_CJK_WEIGHT = 3
# Share of kana among Han+kana above which Han-heavy text is still Japanese. Japanese prose is
# typically 30-60% kana; a lone katakana loanword in Chinese text stays well below this.
_MIN_KANA_SHARE = 0.05


def _count(run_pattern: re.Pattern[str], text: str) -> int:
    # Matching runs rather than single characters makes far fewer match objects.
    return sum(map(len, run_pattern.findall(text)))


def detect_language(text: str) -> str:
    """Return 'en', 'zh', 'ja', 'ko' or 'und' for a chunk or query, judged by script counts."""
    require_str(text)
    han = _count(_HAN_RE, text)
    kana = _count(_KANA_RE, text)
    hangul = _count(_HANGUL_RE, text)
    latin = _count(_LATIN_RE, text)
    cjk = han + kana + hangul
    other = _count(_OTHER_LETTER_RE, text)
    if other >= latin + _CJK_WEIGHT * cjk:
        # Covers "nothing letter-like" (all counts zero) and text in scripts outside the four.
        return UNDETERMINED
    if latin > _CJK_WEIGHT * cjk:
        return ENGLISH
    if hangul >= han + kana:
        return KOREAN
    if kana and kana >= _MIN_KANA_SHARE * (han + kana):
        return JAPANESE
    return CHINESE


def query_languages(text: str) -> frozenset[str]:
    """Languages whose documents a query can match lexically (see module docstring).

    Latin letters -> 'en', Hangul -> 'ko', kana -> 'ja', Han -> 'zh' and 'ja' (a kanji-only query
    may be Japanese), other letters (Cyrillic, Greek...) -> 'und'; a mixed query gets the union. A
    query made only of digits can match a number in any document, so it gets every language. A
    query with nothing searchable (empty, punctuation, emoji) gets the empty set.
    """
    require_str(text)
    languages: set[str] = set()
    if _LATIN_RE.search(text):
        languages.add(ENGLISH)
    if _HANGUL_RE.search(text):
        languages.add(KOREAN)
    if _ANY_KANA_RE.search(text):
        languages.add(JAPANESE)
    if _ANY_HAN_RE.search(text):
        languages.update((CHINESE, JAPANESE))
    if _ANY_OTHER_LETTER_RE.search(text):
        languages.add(UNDETERMINED)
    if not languages and _DIGIT_RE.search(text):
        return ALL_LANGUAGES
    return frozenset(languages)
