"""Request scope for principals: each request resolves a user's principals at most once."""
from access.resolvers import close_request_scope, open_request_scope


def principals_scope(get_response):
    """Middleware: cache ``principals_for`` answers for the duration of one request."""

    def middleware(request):
        token = open_request_scope()
        try:
            return get_response(request)
        finally:
            close_request_scope(token)

    return middleware
