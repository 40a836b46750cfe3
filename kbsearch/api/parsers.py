"""The API's JSON parser: DRF's, with a limit on how deeply a body may nest.

Python's JSON decoder recurses once per level, so a small body nested about a thousand levels deep
(2 KB of brackets) raises ``RecursionError``: a 500 instead of a 400. No legitimate body of this
API nests more than two levels, so bodies deeper than ``MAX_JSON_DEPTH`` are refused before they
reach the decoder. The depth is counted by a linear scan over the brackets outside strings, which
cannot recurse.
"""
import io
import re

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_JSON_DEPTH = 32
# A JSON string, escapes included (the unrolled form, so long strings cost no backtracking).
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


def json_depth_exceeds(text: str, limit: int) -> bool:
    """True when arrays and objects in ``text`` nest deeper than ``limit``; brackets in strings do not count.

    Stops at the first level past the limit. A stray closing bracket is left for the decoder to
    report; brackets after an unclosed string count, so such a body may be called too deep (a 400
    either way).
    """
    if text.count("[") + text.count("{") <= limit:
        return False  # every body this API expects: no scan needed
    depth = 0
    for match in _BRACKET.finditer(_STRING.sub('""', text)):
        if match.group() in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
            if depth < 0:
                return False
    return False


class DepthLimitedJSONParser(JSONParser):
    """``application/json`` bodies nesting deeper than ``MAX_JSON_DEPTH`` levels are a 400 ParseError."""

    max_depth = MAX_JSON_DEPTH

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        raw = stream.read()
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            text = ""  # undecodable: DRF's parser below reports it as malformed JSON
        if json_depth_exceeds(text, self.max_depth):
            raise ParseError(f"JSON parse error - the body nests deeper than {self.max_depth} levels.")
        return super().parse(io.BytesIO(raw), media_type, parser_context)
