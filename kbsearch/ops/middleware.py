"""Operations middleware: the probe and metrics endpoints, and per-request id, latency and access log.

``ops_endpoints`` sits right after the secret-key guard, before anything that checks the host,
redirects to HTTPS, reads a session or requires sign-in: kubelet probes and Prometheus call the
pod's IP over plain HTTP, with a Host header no ALLOWED_HOSTS list contains. It answers only its
three paths and passes everything else on (so these paths are exempt from the HTTPS redirect and
from sign-in by construction; SECURE_REDIRECT_EXEMPT lists them too, for any other order).

``request_observed`` gives every other request an id (the trusted proxy's ``X-Request-ID`` or a
new one), returns it in the response header, puts it on every log line of the request, records
the latency under the route's name and writes one access-log line.
"""
import logging
import re
import time
import uuid

from django.conf import settings

from kbsearch.ops.logging import request_id_var
from kbsearch.ops.metrics import REQUEST_SECONDS
from kbsearch.ops.views import OPS_PATHS

access_logger = logging.getLogger("kbsearch.request")
REQUEST_ID_HEADER = "X-Request-ID"
# What an id from a proxy may look like: enough for UUIDs and trace ids, nothing that could forge
# a log line or bloat every record.
_ACCEPTED_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")


def ops_endpoints(get_response):
    def middleware(request):
        view = OPS_PATHS.get(request.path_info)
        if view is not None:
            return view(request)
        return get_response(request)

    return middleware


def _proxy_trusted(address: str | None) -> bool:
    # Imported here: access.authentication imports models, which are not loaded when settings are.
    from access.authentication import proxy_address_trusted

    return proxy_address_trusted(address)


def incoming_request_id(request) -> str:
    """The proxy's id when it comes from a trusted proxy address and looks like an id; else a new one."""
    offered = request.META.get("HTTP_X_REQUEST_ID", "")
    if offered and _ACCEPTED_REQUEST_ID.fullmatch(offered) and _proxy_trusted(request.META.get("REMOTE_ADDR")):
        return offered
    return uuid.uuid4().hex


def _route(request) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "<unmatched>"
    return match.view_name or match.route or "<unnamed>"


def request_observed(get_response):
    def middleware(request):
        request_id = incoming_request_id(request)
        request.request_id = request_id
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        try:
            response = get_response(request)
            status = response.status_code
            response[REQUEST_ID_HEADER] = request_id
            return response
        finally:
            elapsed = time.perf_counter() - started
            route = _route(request)
            REQUEST_SECONDS.labels(route=route, method=request.method, status=str(status)).observe(elapsed)
            if getattr(settings, "KBSEARCH_ACCESS_LOG", True):
                access_logger.info(
                    "%s %s %s", request.method, route, status,
                    extra={"method": request.method, "route": route, "status": status,
                           "duration_ms": round(elapsed * 1000, 1)},
                )
            request_id_var.reset(token)

    return middleware
