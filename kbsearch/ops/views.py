"""``/healthz``, ``/readyz`` and ``/metrics``: plain JSON (or Prometheus text), no session, no templates.

Served by ``kbsearch.ops.middleware.ops_endpoints`` ahead of the rest of the stack. ``/metrics``
is refused unless the caller's address is in ``KBSEARCH_METRICS_ALLOWED_ADDRESSES`` or it sends
``Authorization: Bearer <KBSEARCH_METRICS_TOKEN>``; with neither configured nobody gets it.
"""
import hmac
import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpResponse, JsonResponse

from kbsearch.ops.health import readiness
from kbsearch.ops.metrics import metrics_exposition
from kbsearch.ops.queues import queue_collectors

_NO_STORE = "no-store"


def _json(payload: dict, status: int = 200) -> JsonResponse:
    response = JsonResponse(payload, status=status)
    response["Cache-Control"] = _NO_STORE
    return response


def healthz(request) -> HttpResponse:
    """The process is up and answering; nothing external is checked."""
    return _json({"status": "ok"})


def readyz(request) -> HttpResponse:
    """200 when database, index and model all answer; otherwise 503 naming what failed."""
    state = readiness()
    return _json({"status": "ready" if state.ready else "not ready", "checks": state.checks}, 200 if state.ready else 503)


@lru_cache(maxsize=8)
def _networks(addresses: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(address, strict=False) for address in addresses)


def metrics_access_allowed(request) -> bool:
    token = getattr(settings, "KBSEARCH_METRICS_TOKEN", "")
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[len("Bearer "):].encode(), token.encode()):
        return True
    allowed = tuple(getattr(settings, "KBSEARCH_METRICS_ALLOWED_ADDRESSES", ()))
    if not allowed:
        return False
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in network for network in _networks(allowed))


def metrics(request) -> HttpResponse:
    if not metrics_access_allowed(request):
        return _json({"detail": "metrics are not available to this client"}, 403)
    body, content_type = metrics_exposition(*queue_collectors(getattr(settings, "CELERY_BROKER_URL", "")))
    response = HttpResponse(body, content_type=content_type)
    response["Cache-Control"] = _NO_STORE
    return response


OPS_PATHS = {"/healthz": healthz, "/readyz": readyz, "/metrics": metrics}
