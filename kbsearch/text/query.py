"""Text that comes in from users and connectors: the query cleaner and the shared type check.

``clean_query`` is the one place a query's text is validated, so the API, the search page, the
command line, feedback and evaluation all accept and reject exactly the same queries.
"""
import unicodedata

MAX_QUERY_CHARS = 1000


def require_str(text: object) -> str:
    """``text`` itself; a TypeError for anything that is not a str (analysis takes text only)."""
    if not isinstance(text, str):
        raise TypeError(f"expected str, got {type(text).__name__}")
    return text


class InvalidQuery(ValueError):
    """A query that cannot be searched (empty, too long, bad mode or alpha)."""


def clean_query(raw: str) -> str:
    """Query text with control characters removed and whitespace collapsed; raises InvalidQuery."""
    if not isinstance(raw, str):
        raise InvalidQuery("query must be text")
    if len(raw) > MAX_QUERY_CHARS:
        raise InvalidQuery(f"query is {len(raw)} characters long; the limit is {MAX_QUERY_CHARS}")
    kept = "".join(
        " " if unicodedata.category(ch) in {"Cc", "Zl", "Zp"} else ch
        for ch in raw
        if unicodedata.category(ch) not in {"Cs", "Co", "Cn"}
    )
    text = " ".join(kept.split())
    if not text:
        raise InvalidQuery("query is empty")
    return text
