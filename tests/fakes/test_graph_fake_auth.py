"""The fake's sign-in: client credentials with a secret or a certificate-signed assertion, AADSTS
errors, bearer checks on every Graph call, and tokens that expire on the tenant's clock.
"""
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.fakes.graph.auth import client_assertion


def test_secret_sign_in_gives_a_bearer_token_the_api_accepts(contoso):
    answer = requests.post(contoso.graph.token_url, data={"grant_type": "client_credentials", "client_id": contoso.client_id,
                                                          "client_secret": "fake-secret-value", "scope": contoso.scope})
    assert answer.status_code == 200
    body = answer.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3599 and body["access_token"]
    site = requests.get(contoso.url(f"/sites/{contoso.site.id}"), headers={"Authorization": f"Bearer {body['access_token']}"})
    assert site.status_code == 200 and site.json()["displayName"] == "Human Resources"


@pytest.mark.parametrize(("form", "status", "error", "code"), [
    ({"client_secret": "wrong"}, 401, "invalid_client", 7000215),
    ({"client_id": "not-registered"}, 400, "unauthorized_client", 700016),
    ({"scope": "https://graph.microsoft.com/Sites.Read.All"}, 400, "invalid_scope", 1002012),
    ({"grant_type": "password"}, 400, "unsupported_grant_type", 70003),
])
def test_bad_credentials_are_refused_with_an_aadsts_error(contoso, form, status, error, code):
    data = {"grant_type": "client_credentials", "client_id": contoso.client_id, "client_secret": "fake-secret-value",
            "scope": contoso.scope, **form}
    answer = requests.post(contoso.graph.token_url, data=data)
    assert answer.status_code == status
    body = answer.json()
    assert body["error"] == error and body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}:")


@pytest.mark.parametrize("authorization", [None, "Bearer not-a-token", "Basic abc"])
def test_api_calls_without_a_valid_bearer_get_401_invalid_authentication_token(contoso, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    answer = requests.get(contoso.url("/sites?search=*"), headers=headers)
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


def test_tokens_expire_on_the_tenant_clock_and_a_new_one_works(contoso):
    contoso.tenant.apps.token_lifetime = 60
    session = contoso.session()
    assert session.get(contoso.url("/sites?search=*")).status_code == 200
    contoso.tenant.clock.advance(seconds=60)
    expired = session.get(contoso.url("/sites?search=*"))
    assert expired.status_code == 401 and "expired" in expired.json()["error"]["message"]
    assert contoso.session().get(contoso.url("/sites?search=*")).status_code == 200


@pytest.fixture(scope="module")
def certificate():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kbsearch-connector")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30)).sign(key, hashes.SHA256()))
    return key, cert


def _assertion_form(assertion: str) -> dict:
    return {"grant_type": "client_credentials", "client_id": "cert-app", "scope": "https://graph.microsoft.com/.default",
            "client_assertion": assertion, "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}


def test_certificate_sign_in_with_a_signed_client_assertion(contoso, certificate):
    key, cert = certificate
    contoso.tenant.apps.app_add(client_id="cert-app", certificate_pem=cert.public_bytes(serialization.Encoding.PEM))
    assertion = client_assertion(client_id="cert-app", audience=contoso.graph.token_url, private_key=key,
                                 now=time.time(), certificate_der=cert.public_bytes(serialization.Encoding.DER))
    answer = requests.post(contoso.graph.token_url, data=_assertion_form(assertion))
    assert answer.status_code == 200, answer.text
    token = answer.json()["access_token"]
    assert requests.get(contoso.url("/sites?search=*"), headers={"Authorization": f"Bearer {token}"}).status_code == 200


@pytest.mark.parametrize(("case", "code"), [("other key", 700027), ("expired", 700024), ("audience", 700021),
                                             ("tampered", 700027)])
def test_certificate_sign_in_refuses_bad_assertions(contoso, certificate, case, code):
    key, cert = certificate
    contoso.tenant.apps.app_add(client_id="cert-app", public_key_pem=key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    signer = rsa.generate_private_key(public_exponent=65537, key_size=2048) if case == "other key" else key
    now = time.time() - 3600 if case == "expired" else time.time()
    audience = "https://login.microsoftonline.com/other/oauth2/v2.0/token" if case == "audience" else contoso.graph.token_url
    assertion = client_assertion(client_id="cert-app", audience=audience, private_key=signer, now=now, lifetime=600)
    if case == "tampered":
        head, claims, signature = assertion.split(".")
        other = client_assertion(client_id="cert-app", audience=audience, private_key=signer, now=now + 1)
        assertion = f"{head}.{other.split('.')[1]}.{signature}"  # someone else's claims, this signature
    answer = requests.post(contoso.graph.token_url, data=_assertion_form(assertion))
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_client" and answer.json()["error_codes"] == [code]


