"""Startup guard: a web process without a secret key refuses to serve instead of failing per request.

With DEBUG off and no ``KBSEARCH_SECRET_KEY`` the settings leave ``SECRET_KEY`` empty (never a
known key). Management commands that need no secret still run; a web process stops right here,
when Django loads its middleware at startup, with a message that says what to set.
"""
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, MiddlewareNotUsed

MISSING_SECRET_KEY = (
    "KBSEARCH_SECRET_KEY is not set. Set it to a long random string, the same in every web process "
    "(for example the output of: python -c 'import secrets; print(secrets.token_urlsafe(50))'), "
    "or set KBSEARCH_DEBUG=1 for a development server on this machine."
)


def secret_key_required(get_response):
    """Middleware factory: raise at load time without a key; otherwise drop out of the chain."""
    try:
        key = settings.SECRET_KEY
    except ImproperlyConfigured:  # Django refuses to hand out an empty key
        key = ""
    if not key:
        raise ImproperlyConfigured(MISSING_SECRET_KEY)
    raise MiddlewareNotUsed()
