"""The Microsoft identity platform's client-credentials flow, as the fake answers it.

``POST /{tenant}/oauth2/v2.0/token`` with ``grant_type=client_credentials``, the scope
``https://graph.microsoft.com/.default`` and either ``client_secret`` or a ``client_assertion``
(a JWT signed with the app's certificate key, RS256 or PS256, ``aud`` the token endpoint,
``iss`` = ``sub`` = client id, a current ``exp``/``nbf``, a ``jti``). Errors carry AADSTS codes
like the real service; the assertion's times are checked against the real clock, which the client
signed them with. Access tokens are opaque random strings (the real ones are JWTs, but a
client must not read them) and expire after ``token_lifetime`` seconds of the tenant's clock.
"""
import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

GRAPH_SCOPES = {"https://graph.microsoft.com/.default", "00000003-0000-0000-c000-000000000000/.default"}
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass
class App:
    client_id: str
    secret: str | None = None
    public_key: object | None = None  # a cryptography RSA public key
    thumbprint: str | None = None  # base64url SHA-1 of the certificate (the JWT's x5t), if known


@dataclass
class IssuedToken:
    client_id: str
    expires: datetime


class TokenError(Exception):
    def __init__(self, status: int, error: str, code: int, description: str):
        super().__init__(description)
        self.status, self.error, self.code, self.description = status, error, code, description


@dataclass
class AppRegistry:
    tenant: object
    token_lifetime: int = 3599
    apps: dict[str, App] = field(default_factory=dict)
    tokens: dict[str, IssuedToken] = field(default_factory=dict)

    def app_add(self, *, client_id: str, secret: str | None = None, public_key_pem: bytes | None = None,
                certificate_pem: bytes | None = None) -> App:
        """An app registration that may sign in with a secret, a key pair, or a certificate."""
        public_key, thumbprint = None, None
        if certificate_pem is not None:
            from cryptography import x509

            certificate = x509.load_pem_x509_certificate(certificate_pem)
            public_key = certificate.public_key()
            digest = certificate.fingerprint(hashes.SHA1())  # noqa: S303 - x5t is SHA-1 by definition
            thumbprint = base64.urlsafe_b64encode(digest).decode().rstrip("=")
        elif public_key_pem is not None:
            public_key = serialization.load_pem_public_key(public_key_pem)
        app = App(client_id=client_id, secret=secret, public_key=public_key, thumbprint=thumbprint)
        self.apps[client_id] = app
        return app

    def revoke_all(self) -> None:
        self.tokens.clear()

    def token_issue(self, tenant_segment: str, form: dict[str, str], token_url: str) -> dict:
        """The body of a successful token response, or a TokenError."""
        tenant = self.tenant
        if tenant_segment not in {tenant.tenant_id, f"{tenant.domain}.onmicrosoft.com"}:
            raise TokenError(400, "invalid_request", 90002, f"AADSTS90002: Tenant '{tenant_segment}' not found.")
        if form.get("grant_type") != "client_credentials":
            raise TokenError(400, "unsupported_grant_type", 70003,
                             "AADSTS70003: The app requested an unsupported grant type.")
        client_id = form.get("client_id", "")
        app = self.apps.get(client_id)
        if app is None:
            raise TokenError(400, "unauthorized_client", 700016,
                             f"AADSTS700016: Application with identifier '{client_id}' was not found in the "
                             f"directory '{tenant.tenant_id}'.")
        if form.get("scope") not in GRAPH_SCOPES:
            raise TokenError(400, "invalid_scope", 1002012,
                             f"AADSTS1002012: The provided value for scope {form.get('scope')} is not valid. "
                             "Client credential flows must have a scope value with /.default suffixed.")
        if "client_assertion" in form:
            self._check_assertion(app, form, token_url)
        elif app.secret is None or not secrets.compare_digest(form.get("client_secret", ""), app.secret):
            raise TokenError(401, "invalid_client", 7000215,
                             "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in "
                             f"the request is the client secret value, not the client secret ID, for a secret "
                             f"added to app '{client_id}'.")
        access_token = secrets.token_urlsafe(32)
        self.tokens[access_token] = IssuedToken(
            client_id, tenant.clock.now() + timedelta(seconds=self.token_lifetime))
        return {"token_type": "Bearer", "expires_in": self.token_lifetime, "ext_expires_in": self.token_lifetime,
                "access_token": access_token}

    def bearer_valid(self, authorization: str | None) -> str | None:
        """None when the header holds a current token, else the message Graph would give."""
        if not authorization or not authorization.startswith("Bearer "):
            return "Access token is empty."
        issued = self.tokens.get(authorization.removeprefix("Bearer ").strip())
        if issued is None:
            return "Invalid JWT token. The token is malformed or not issued by this tenant."
        if self.tenant.clock.now() >= issued.expires:
            return "Lifetime validation failed, the token is expired."
        return None

    def _check_assertion(self, app: App, form: dict[str, str], token_url: str) -> None:
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise TokenError(400, "invalid_request", 90014, "AADSTS90014: The required field 'client_assertion_type' "
                             "is missing or not 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'.")
        if app.public_key is None:
            raise TokenError(401, "invalid_client", 700027, "AADSTS700027: No certificate is registered for the app.")
        try:
            header_b64, claims_b64, signature_b64 = form["client_assertion"].split(".")
            header, claims = json.loads(_b64decode(header_b64)), json.loads(_b64decode(claims_b64))
            signature = _b64decode(signature_b64)
        except ValueError:
            raise TokenError(401, "invalid_client", 50027, "AADSTS50027: JWT token is invalid or malformed.") from None
        if app.thumbprint and header.get("x5t") not in {None, app.thumbprint}:
            raise TokenError(401, "invalid_client", 700027,
                             f"AADSTS700027: The certificate with identifier {header.get('x5t')} was not found.")
        signed = f"{header_b64}.{claims_b64}".encode()
        try:
            if header.get("alg") == "RS256":
                app.public_key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
            elif header.get("alg") == "PS256":
                app.public_key.verify(signature, signed, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
            else:
                raise InvalidSignature
        except InvalidSignature:
            raise TokenError(401, "invalid_client", 700027,
                             "AADSTS700027: Client assertion failed signature validation.") from None
        # The assertion is made on the client's (real) clock, not on the tenant's fake one.
        now = time.time()
        if claims.get("iss") != app.client_id or claims.get("sub") != app.client_id:
            raise TokenError(401, "invalid_client", 700023, "AADSTS700023: Client assertion issuer or subject is "
                             "not the client id.")
        if claims.get("aud") not in _audiences(self.tenant, token_url):
            raise TokenError(401, "invalid_client", 700021, "AADSTS700021: Client assertion audience claim does not "
                             "match Realm issuer.")
        if not isinstance(claims.get("exp"), int | float) or claims["exp"] <= now or claims.get("nbf", 0) > now + 300:
            raise TokenError(401, "invalid_client", 700024,
                             "AADSTS700024: Client assertion is not within its valid time range.")
        if not claims.get("jti"):
            raise TokenError(401, "invalid_client", 50027, "AADSTS50027: JWT token has no jti claim.")


def _audiences(tenant, token_url: str) -> set[str]:
    """The real endpoint's URL (login.microsoftonline.com) and the fake's own are both accepted."""
    real = {f"https://login.microsoftonline.com/{t}/oauth2/v2.0/token"
            for t in (tenant.tenant_id, f"{tenant.domain}.onmicrosoft.com")}
    return real | {token_url}


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def client_assertion(*, client_id: str, audience: str, private_key, now: float, lifetime: int = 600,
                     certificate_der: bytes | None = None) -> str:
    """A signed client assertion JWT (RS256), as MSAL builds one: for tests of the fake itself.

    A connector builds its own; this exists so the fake's certificate flow can be checked without one.
    """
    header = {"alg": "RS256", "typ": "JWT"}
    if certificate_der is not None:
        digest = hashlib.sha1(certificate_der).digest()  # noqa: S324 - x5t is SHA-1 by definition
        header["x5t"] = base64.urlsafe_b64encode(digest).decode().rstrip("=")
    claims = {"aud": audience, "iss": client_id, "sub": client_id, "jti": secrets.token_hex(8),
              "nbf": int(now), "exp": int(now + lifetime)}

    def part(obj) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    signed = f"{part(header)}.{part(claims)}"
    signature = private_key.sign(signed.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signed + "." + base64.urlsafe_b64encode(signature).decode().rstrip("=")
