"""Request scope for principals, and the user a trusted reverse proxy signed in."""
import logging

from django.conf import settings
from django.contrib.auth.middleware import RemoteUserMiddleware

from access.resolvers import close_request_scope, open_request_scope

logger = logging.getLogger(__name__)


def principals_scope(get_response):
    """Middleware: cache ``principals_for`` answers for the duration of one request."""

    def middleware(request):
        token = open_request_scope()
        try:
            return get_response(request)
        finally:
            close_request_scope(token)

    return middleware


def proxy_header_key(name: str) -> str:
    """``X-Remote-User`` -> ``HTTP_X_REMOTE_USER``, the request.META key Django files the header under."""
    return "HTTP_" + name.strip().upper().replace("-", "_")


class TrustedProxyUserMiddleware(RemoteUserMiddleware):
    """Sign in the user named in ``KBSEARCH_TRUSTED_PROXY_HEADER``, only from a trusted proxy address.

    Off while the setting is empty (the default). A request carrying the header from any address
    not in ``KBSEARCH_TRUSTED_PROXY_ADDRESSES`` is served as if it had no header (a client can
    send any header it likes; only the proxy's word counts) and the attempt is logged; a session
    the proxy started ends on any request that does not come through the proxy with the header. From a
    trusted address, Django's remote-user flow runs with ``DirectoryRemoteUserBackend``, which
    accepts only enabled directory users; a session it started ends when the header stops coming.
    """

    async_capable = False  # the directory lookups are synchronous ORM calls

    def __call__(self, request):
        header = getattr(settings, "KBSEARCH_TRUSTED_PROXY_HEADER", "")
        if header:
            self.header = proxy_header_key(header)
            self._from_proxy(request)
        return self.get_response(request)

    def _from_proxy(self, request) -> None:
        # Imported here: access.authentication imports models, which may not be loaded yet.
        from access.authentication import proxy_address_trusted

        address = request.META.get("REMOTE_ADDR")
        if proxy_address_trusted(address):
            self.process_request(request)
            return
        if self.header in request.META:
            logger.warning(
                "ignored the %s header from %s, which is not a trusted proxy address",
                settings.KBSEARCH_TRUSTED_PROXY_HEADER, address,
            )
        # Served as if the header were absent, so a session the proxy started ends here as it does
        # when the proxy stops sending the header: its cookie must not work around the proxy.
        if request.user.is_authenticated:
            self._remove_invalid_user(request)  # only sessions of a RemoteUserBackend
