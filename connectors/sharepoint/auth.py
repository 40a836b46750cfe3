"""App-only sign-in to Microsoft Graph: the OAuth 2.0 client-credentials flow.

The app proves itself with a client secret or with a certificate: a JWT client assertion (RS256,
``aud`` = the token endpoint, ``iss`` = ``sub`` = the client id, a short life and a ``jti``) signed
with the certificate's private key, with the certificate's SHA-1 thumbprint as ``x5t`` when the
certificate is given. The access token is cached until shortly before it expires and fetched
again on demand; a 401 from Graph before then (a revoked or server-side expired token) makes the
client call ``invalidate`` and retry once with a fresh one.

Secrets never appear in messages or logs: a failed sign-in reports the endpoint's AADSTS error.
"""
import base64
import json
import time
import uuid

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from connectors.base import ConnectorConfigError, ConnectorError

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# A token is renewed this long before the expiry the endpoint announced: a request sent just
# before the deadline must not arrive just after it.
_EXPIRY_MARGIN_SECONDS = 120
_ASSERTION_LIFETIME_SECONDS = 600


class SignInFailed(ConnectorError):
    """The token endpoint refused the app's credentials: the run fails, nothing is pruned."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


class ClientCredentials:
    """Access tokens for one app registration; ``token()`` is cheap while the cached one is fresh."""

    def __init__(self, *, token_url: str, client_id: str, client_secret: str = "", private_key_pem: str = "",
                 certificate_pem: str = "", session: requests.Session | None = None, timeout: float = 30.0,
                 clock=time.time) -> None:
        if not client_secret and not private_key_pem:
            raise ConnectorConfigError("sign-in needs a client_secret or a certificate private key (private_key_pem)")
        self.token_url = token_url
        self.client_id = client_id
        self._secret = client_secret
        self._key = None
        self._thumbprint = None
        if private_key_pem:
            try:
                self._key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
            except (ValueError, TypeError) as error:
                raise ConnectorConfigError(f"private_key_pem is not an unencrypted PEM private key: {error}") from None
            if not isinstance(self._key, rsa.RSAPrivateKey):
                raise ConnectorConfigError("private_key_pem must be an RSA key (Entra ID signs assertions with RS256)")
        if certificate_pem:
            try:
                certificate = x509.load_pem_x509_certificate(certificate_pem.encode())
            except ValueError as error:
                raise ConnectorConfigError(f"certificate_pem is not a PEM certificate: {error}") from None
            self._thumbprint = _b64url(certificate.fingerprint(hashes.SHA1()))  # noqa: S303 - x5t is SHA-1
        self._session = session or requests.Session()
        self._timeout = timeout
        self._clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        self.issued = 0  # tokens fetched, for tests and logs

    def __repr__(self) -> str:
        return f"<ClientCredentials {self.client_id}>"  # never the secret or key

    def token(self) -> str:
        if self._token is None or self._clock() >= self._expires_at:
            self._fetch()
        return self._token

    def invalidate(self) -> None:
        """Forget the cached token: Graph refused it."""
        self._token = None

    def _fetch(self) -> None:
        form = {"grant_type": "client_credentials", "client_id": self.client_id, "scope": GRAPH_SCOPE}
        if self._key is not None:
            form["client_assertion_type"] = ASSERTION_TYPE
            form["client_assertion"] = self._assertion()
        else:
            form["client_secret"] = self._secret
        try:
            answer = self._session.post(self.token_url, data=form, timeout=self._timeout)
        except requests.RequestException as error:
            raise ConnectorError(f"token endpoint unreachable: {type(error).__name__}") from None
        try:
            body = answer.json()
        except ValueError:
            body = {}
        if answer.status_code != 200 or "access_token" not in body:
            description = str(body.get("error_description") or answer.reason or "").split("\n")[0][:300]
            raise SignInFailed(f"sign-in refused ({answer.status_code} {body.get('error', '')}): {description}")
        lifetime = float(body.get("expires_in") or 0)
        self._token = body["access_token"]
        self._expires_at = self._clock() + max(lifetime - _EXPIRY_MARGIN_SECONDS, lifetime / 2)
        self.issued += 1

    def _assertion(self) -> str:
        now = int(self._clock())
        header = {"alg": "RS256", "typ": "JWT"}
        if self._thumbprint:
            header["x5t"] = self._thumbprint
        claims = {"aud": self.token_url, "iss": self.client_id, "sub": self.client_id, "jti": str(uuid.uuid4()),
                  "nbf": now, "iat": now, "exp": now + _ASSERTION_LIFETIME_SECONDS}
        signed = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = self._key.sign(signed.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
        return f"{signed}.{_b64url(signature)}"
