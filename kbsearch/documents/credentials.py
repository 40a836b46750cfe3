"""Connector credentials, encrypted at rest.

A source's API token, client secret or certificate key is stored only as a Fernet token
(AES-128-CBC with an HMAC) in ``Source.credentials_encrypted``. The key comes from the
environment (``KBSEARCH_CREDENTIALS_KEY``, a Kubernetes secret in production), never from the
database, so a database dump alone reveals no credential. Several comma-separated keys may be
given: the first encrypts, all decrypt, which is how a key is rotated (add the new key first,
re-save the sources with ``source_credentials_rotate``, drop the old key).

Without a key nothing can be stored (``CredentialsUnavailable``): kbsearch refuses rather than
keeping a secret in clear. Credentials are write-only: the admin shows whether a source has them,
never their value, and connectors receive them apart from their configuration so that logging a
configuration never logs a secret.
"""
import json

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from kbsearch.documents.models import Source


class CredentialsUnavailable(RuntimeError):
    """No key is configured, or the stored credentials cannot be decrypted with the keys given."""


def _fernet() -> MultiFernet:
    raw = getattr(settings, "KBSEARCH_CREDENTIALS_KEY", "") or ""
    keys = [key.strip() for key in raw.split(",") if key.strip()]
    if not keys:
        raise CredentialsUnavailable(
            "KBSEARCH_CREDENTIALS_KEY is not set: connector credentials are stored encrypted only. "
            "Make a key with: python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
        )
    try:
        return MultiFernet([Fernet(key.encode("ascii")) for key in keys])
    except (ValueError, UnicodeEncodeError) as error:
        raise CredentialsUnavailable(
            "KBSEARCH_CREDENTIALS_KEY must be Fernet keys (32 url-safe base64-encoded bytes), comma-separated"
        ) from error


def source_credentials_set(*, source: Source, credentials: dict[str, str]) -> None:
    """Encrypt and store ``credentials`` (names to strings) for ``source``; empty removes them."""
    if not isinstance(credentials, dict) or not all(
        isinstance(name, str) and isinstance(value, str) for name, value in credentials.items()
    ):
        raise ValueError("credentials must map names to strings")
    token = _fernet().encrypt(json.dumps(credentials).encode("utf-8")).decode("ascii") if credentials else ""
    Source.objects.filter(pk=source.pk).update(credentials_encrypted=token)
    source.credentials_encrypted = token


def source_credentials(source: Source) -> dict[str, str]:
    """The decrypted credentials of ``source`` ({} when it has none)."""
    if not source.credentials_encrypted:
        return {}
    try:
        return json.loads(_fernet().decrypt(source.credentials_encrypted.encode("ascii")))
    except InvalidToken:
        raise CredentialsUnavailable(
            f"the credentials of source {source.key} cannot be decrypted with KBSEARCH_CREDENTIALS_KEY "
            "(a key was changed without rotating); set them again"
        ) from None


def source_credentials_rotate() -> int:
    """Re-encrypt every source's credentials with the first configured key; returns how many."""
    fernet = _fernet()
    rotated = 0
    for source in Source.objects.exclude(credentials_encrypted=""):
        try:
            token = fernet.rotate(source.credentials_encrypted.encode("ascii")).decode("ascii")
        except InvalidToken:
            raise CredentialsUnavailable(f"the credentials of source {source.key} cannot be decrypted") from None
        Source.objects.filter(pk=source.pk).update(credentials_encrypted=token)
        rotated += 1
    return rotated
