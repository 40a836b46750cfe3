"""Structured logs: one JSON object per line, each carrying the id of the request it belongs to.

python-json-logger (maintained again since 2024, 4.x) formats the records: it handles extras,
exceptions and stack traces the way log shippers expect, which a hand-written formatter would have
to relearn. The request id lives in a context variable set by ``kbsearch.ops.middleware``, so a
log line from deep inside a search (an index warning, a slow directory) names its request too.
"""
import contextvars
import logging

from pythonjsonlogger.json import JsonFormatter

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("kbsearch_request_id", default=None)


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` (None outside a request) to every record; filters nothing out."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


class KbsearchJsonFormatter(JsonFormatter):
    """JSON lines with ``time``, ``level``, ``logger``, ``message``, ``request_id`` and any extras."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("rename_fields", {"asctime": "time", "levelname": "level", "name": "logger"})
        kwargs.setdefault("timestamp", False)
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s", *args, **kwargs)

    def formatTime(self, record, datefmt=None):  # noqa: N802 - logging's name
        # ISO 8601 in UTC with milliseconds: sortable, and unambiguous across time zones.
        import datetime

        moment = datetime.datetime.fromtimestamp(record.created, tz=datetime.UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

