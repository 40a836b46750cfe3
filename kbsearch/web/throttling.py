"""The page's rate limits: the API's throttles and buckets, applied to plain Django views.

The page and the API call the same services, so they spend the same per-user budget: the throttle
classes of ``kbsearch.search.throttles`` keep their counters in the cache under a key made of the
bucket and the user id, whichever front end asks. A user who reached the API's limit is limited
on the page too, and the other way round.
"""
import math
from functools import wraps

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from kbsearch.web.strings import ui_language, ui_text


def throttle_wait(request: HttpRequest, *throttle_classes) -> int | None:
    """Seconds to wait when a bucket is exhausted, else None (the request is counted in each bucket).

    Every bucket is asked, as DRF's ``APIView.check_throttles`` does, so a request costs the same
    through the page as through the API.
    """
    waits = []
    for throttle_class in throttle_classes:
        throttle = throttle_class()
        if not throttle.allow_request(request, None):
            waits.append(throttle.wait() or 1)
    if not waits:
        return None
    return max(1, math.ceil(max(waits)))


def rate_limited_response(request: HttpRequest, seconds: int) -> HttpResponse:
    """A 429 page in the browser's language, with ``Retry-After`` as the API sends it."""
    lang = ui_language(getattr(request, "LANGUAGE_CODE", ""))
    context = {"message": ui_text(lang, "rate_text", seconds=seconds)}
    response = render(request, "web/rate_limited.html", context, status=429)
    response["Retry-After"] = str(seconds)
    return response


def rate_limited(*throttle_classes):
    """View decorator: a 429 page when any of these buckets is exhausted for the user."""

    def decorator(view):
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            seconds = throttle_wait(request, *throttle_classes)
            if seconds is not None:
                return rate_limited_response(request, seconds)
            return view(request, *args, **kwargs)

        return wrapper

    return decorator
