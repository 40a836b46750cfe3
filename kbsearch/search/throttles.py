"""Per-user rate limits, one bucket per kind of request, shared by the API and the search page.

DRF's throttles copy ``DEFAULT_THROTTLE_RATES`` into a class attribute when first imported, so a
changed setting (tests, a reloaded deployment) would be ignored; these read the rate from settings
on every request instead. Counters live in the default cache: LocMem per process by default, a
shared Redis when ``KBSEARCH_CACHE_URL`` points at one (several web processes then share limits).
"""
from django.conf import settings
from rest_framework.throttling import UserRateThrottle


class _SettingsRateThrottle(UserRateThrottle):
    def get_rate(self) -> str | None:
        rates = getattr(settings, "REST_FRAMEWORK", {}).get("DEFAULT_THROTTLE_RATES", {})
        return rates.get(self.scope)


class SearchRateThrottle(_SettingsRateThrottle):
    """Searches (API and page): each costs a query encoding, the expensive part."""

    scope = "search"


class DocumentRateThrottle(_SettingsRateThrottle):
    scope = "documents"


class FeedbackRateThrottle(_SettingsRateThrottle):
    """Feedback and clicks share one bucket: both are cheap writes, abuse of either is the same."""

    scope = "feedback"
