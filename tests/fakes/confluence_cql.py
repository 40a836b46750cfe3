"""The subset of CQL (Confluence Query Language) the fake server understands.

Grammar: ``clause (AND clause)* [ORDER BY field [ASC|DESC] (, field [ASC|DESC])*]``, a clause being
``field op value`` or ``field [NOT] IN (value, ...)``; values quoted with " or ', or bare words and
numbers. Keywords are case-insensitive.

Fields and operators:
- ``space`` / ``space.key``: = != IN, NOT IN
- ``type`` (page, blogpost, attachment): = != IN, NOT IN
- ``id``: = != IN, NOT IN;  ``ancestor``: = IN;  ``parent``: =
- ``title``: = and ~ (contains, case-insensitive)
- ``lastmodified`` / ``created``: = > >= < <= with "yyyy-MM-dd HH:mm", "yyyy/MM/dd HH:mm",
  "yyyy-MM-dd" or "yyyy/MM/dd", read in the site's time zone. The bound is the start of the minute
  (or day) and is compared with millisecond timestamps, so ``lastmodified > "2024-03-01 10:05"``
  includes an edit at 10:05:30 — incremental polls must overlap their windows as with the real one.
- ORDER BY ``lastmodified``, ``created``, ``id``, ``title``.

Anything else (OR, NOT before a clause, parentheses, functions such as now(), other fields) raises
``CqlError``; the server answers 400 with ``Could not parse cql : <query>`` as Confluence does.
"""
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tests.fakes.confluence_model import Content, Site

_TOKEN = re.compile(r"""\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(?P<op>!=|>=|<=|!~|=|>|<|~|\(|\)|,)|(?P<word>[\w.:-]+))""")
_FIELDS = {
    "space": {"=", "!=", "in", "not in"}, "space.key": {"=", "!=", "in", "not in"},
    "type": {"=", "!=", "in", "not in"}, "id": {"=", "!=", "in", "not in"},
    "ancestor": {"=", "in"}, "parent": {"="}, "title": {"=", "~"},
    "lastmodified": {"=", ">", ">=", "<", "<="}, "created": {"=", ">", ">=", "<", "<="},
}
_ORDER_FIELDS = {"lastmodified", "created", "id", "title"}
_DATE_FORMATS = (("%Y-%m-%d %H:%M", timedelta(minutes=1)), ("%Y/%m/%d %H:%M", timedelta(minutes=1)),
                 ("%Y-%m-%d", timedelta(days=1)), ("%Y/%m/%d", timedelta(days=1)))


class CqlError(ValueError):
    pass


@dataclass
class Clause:
    field: str
    op: str
    values: list[str]


@dataclass
class CqlQuery:
    clauses: list[Clause]
    order_by: list[tuple[str, bool]] = field(default_factory=list)  # (field, descending)


def _tokens(cql: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    while position < len(cql.rstrip()):
        match = _TOKEN.match(cql, position)
        if not match or match.end() == position:
            raise CqlError(cql)
        kind = match.lastgroup
        text = match.group(kind)
        if kind == "str":
            text = re.sub(r"\\(.)", r"\1", text[1:-1])
        tokens.append((kind, text))
        position = match.end()
    return tokens


def parse(cql: str) -> CqlQuery:
    tokens = _tokens(cql)
    position = 0

    def peek(offset=0):
        index = position + offset
        return tokens[index] if index < len(tokens) else (None, None)

    def take():
        nonlocal position
        if position >= len(tokens):
            raise CqlError(cql)
        position += 1
        return tokens[position - 1]

    def value():
        kind, text = take()
        if kind not in ("str", "word"):
            raise CqlError(cql)
        return text

    query = CqlQuery([])
    while True:
        kind, name = take()
        if kind != "word" or name.lower() not in _FIELDS:
            raise CqlError(cql)
        name = name.lower()
        op_kind, op = take()
        if op_kind == "word" and op.lower() == "not" and (peek()[1] or "").lower() == "in":
            take()
            op = "not in"
        elif op_kind == "word" and op.lower() == "in":
            op = "in"
        elif op_kind != "op" or op in "(),":
            raise CqlError(cql)
        if op not in _FIELDS[name]:
            raise CqlError(cql)
        if op in ("in", "not in"):
            if take() != ("op", "("):
                raise CqlError(cql)
            values = [value()]
            while peek() == ("op", ","):
                take()
                values.append(value())
            if take() != ("op", ")"):
                raise CqlError(cql)
        else:
            values = [value()]
        query.clauses.append(Clause("space" if name == "space.key" else name, op, values))
        kind, word = peek()
        if kind is None:
            return query
        if kind == "word" and word.lower() == "and":
            take()
            continue
        if kind == "word" and word.lower() == "order" and (peek(1)[1] or "").lower() == "by":
            position += 2
            break
        raise CqlError(cql)  # OR, stray words, parentheses
    while True:
        kind, name = take()
        if kind != "word" or name.lower() not in _ORDER_FIELDS:
            raise CqlError(cql)
        descending = False
        if (peek()[1] or "").lower() in ("asc", "desc"):
            descending = take()[1].lower() == "desc"
        query.order_by.append((name.lower(), descending))
        if peek() == (None, None):
            return query
        if take() != ("op", ","):
            raise CqlError(cql)


def _date_range(text: str, site: Site, cql: str) -> tuple[datetime, datetime]:
    for pattern, width in _DATE_FORMATS:
        try:
            start = datetime.strptime(text, pattern).replace(tzinfo=site.timezone)
        except ValueError:
            continue
        return start, start + width
    raise CqlError(cql)


def _matches(site: Site, content: Content, clause: Clause, cql: str) -> bool:
    values, op = clause.values, clause.op
    if clause.field in ("space", "type", "id"):
        actual = {"space": content.space.key, "type": content.type, "id": content.id}[clause.field]
        inside = actual in values
        return inside if op in ("=", "in") else not inside
    if clause.field == "ancestor":
        return any(a.id in values for a in site.ancestors(content))
    if clause.field == "parent":
        return content.parent_id == values[0] and content.type != "attachment"
    if clause.field == "title":
        return content.title == values[0] if op == "=" else values[0].lower() in content.title.lower()
    moment = content.when if clause.field == "lastmodified" else content.created
    start, end = _date_range(values[0], site, cql)
    return {"=": start <= moment < end, ">": moment > start, ">=": moment >= start,
            "<": moment < start, "<=": moment <= start}[op]


def search(site: Site, cql: str) -> list[Content]:
    """Live content matching ``cql``, in its ORDER BY order (creation order otherwise). Caller holds site.lock."""
    query = parse(cql)
    for clause in query.clauses:  # a bad date is a 400 even when nothing would be compared with it
        if clause.field in ("lastmodified", "created"):
            _date_range(clause.values[0], site, cql)
    found = [
        c for c in site.content.values()
        if site.is_live(c) and all(_matches(site, c, clause, cql) for clause in query.clauses)
    ]
    found.sort(key=lambda c: c.seq)
    for name, descending in reversed(query.order_by):
        key = {"lastmodified": lambda c: c.when, "created": lambda c: c.created,
               "id": lambda c: c.seq, "title": lambda c: c.title}[name]
        found.sort(key=key, reverse=descending)
    return found
