"""Programmable, deterministic faults and the request log of the fake Graph server.

A rule fires on requests whose method matches and whose target (path and query, as sent)
contains ``match`` (or for which ``match(method, target)`` is true): it lets ``skip`` matching
requests through, then fires on the next ``times`` ones. Rules are checked in the order they were
added; at most one answer-replacing rule fires per request. The log records every request,
faulted or not, so a test can count HTTP calls exactly.
"""
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

Matcher = str | Callable[[str, str], bool] | None

ERROR_CODES = {429: "activityLimitReached", 500: "generalException", 502: "badGateway",
               503: "serviceNotAvailable", 504: "gatewayTimeout", 410: "resyncRequired"}


@dataclass
class LoggedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    status: int | None  # None: the connection was dropped without an answer
    prefer: str | None = None
    authorized: bool = False


@dataclass
class FaultRule:
    kind: str  # "status" | "drop" | "truncate" | "malformed_item" | "hook"
    times: int
    skip: int = 0
    match: Matcher = None
    method: str | None = "GET"
    status: int = 0
    retry_after: float | None = None
    callback: Callable[[], None] | None = None

    def matches(self, method: str, target: str) -> bool:
        if self.method is not None and method != self.method:
            return False
        if self.match is None:
            return True
        if callable(self.match):
            return self.match(method, target)
        return self.match in target


@dataclass
class FaultDecision:
    answer: FaultRule | None = None  # replaces the response: status, drop or truncate
    malformed_item: bool = False
    hooks: list[Callable[[], None]] = field(default_factory=list)


class Faults:
    """What a test wants to go wrong next. Everything is counted, nothing is random."""

    def __init__(self):
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()

    def throttle(self, times: int = 1, *, retry_after: float = 0, match: Matcher = None, skip: int = 0,
                 status: int = 429, method: str | None = "GET") -> FaultRule:
        """429 (or 503) with a ``Retry-After`` header, in seconds (fractions allowed for fast tests)."""
        return self._add(FaultRule("status", times, skip, match, method, status=status, retry_after=retry_after))

    def fail(self, status: int, *, times: int = 1, match: Matcher = None, skip: int = 0,
             method: str | None = "GET") -> FaultRule:
        """An error answer with Graph's error body, e.g. 500 on the second delta page (``skip=1``)."""
        return self._add(FaultRule("status", times, skip, match, method, status=status))

    def drop_connection(self, *, times: int = 1, match: Matcher = None, skip: int = 0, mid_body: bool = False,
                        method: str | None = "GET") -> FaultRule:
        """Close the socket: before any answer, or after the headers and half the body."""
        return self._add(FaultRule("truncate" if mid_body else "drop", times, skip, match, method))

    def malformed_delta_item(self, *, times: int = 1, match: Matcher = "/delta", skip: int = 0) -> FaultRule:
        """The next delta page also holds an item without an id and with a number for a name."""
        return self._add(FaultRule("malformed_item", times, skip, match, "GET"))

    def before(self, callback: Callable[[], None], *, match: Matcher = None, times: int = 1, skip: int = 0,
               method: str | None = "GET") -> FaultRule:
        """Run ``callback`` (e.g. delete an item) just before the matching request is answered."""
        return self._add(FaultRule("hook", times, skip, match, method, callback=callback))

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    @property
    def pending(self) -> list[FaultRule]:
        with self._lock:
            return [r for r in self._rules if r.times > 0]

    def _add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            self._rules.append(rule)
        return rule

    def decide(self, method: str, target: str) -> FaultDecision:
        decision = FaultDecision()
        with self._lock:
            for rule in self._rules:
                if rule.times <= 0 or not rule.matches(method, target):
                    continue
                if rule.kind in {"status", "drop", "truncate"} and decision.answer is not None:
                    continue
                if rule.skip > 0:
                    rule.skip -= 1
                    continue
                rule.times -= 1
                if rule.kind == "hook":
                    decision.hooks.append(rule.callback)
                elif rule.kind == "malformed_item":
                    decision.malformed_item = True
                else:
                    decision.answer = rule
        return decision


class RequestLog:
    def __init__(self):
        self._entries: list[LoggedRequest] = []
        self._lock = threading.Lock()

    def record(self, method: str, target: str, status: int | None, prefer: str | None, authorized: bool) -> None:
        parts = urlsplit(target)
        entry = LoggedRequest(method, parts.path, parse_qs(parts.query, keep_blank_values=True), status,
                              prefer, authorized)
        with self._lock:
            self._entries.append(entry)

    @property
    def entries(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._entries)

    def count(self, *, path_contains: str = "", method: str | None = None, status: int | None = None) -> int:
        return sum(1 for e in self.entries if path_contains in e.path and (method is None or e.method == method)
                   and (status is None or e.status == status))

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
