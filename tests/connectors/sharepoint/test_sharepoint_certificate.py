"""Certificate sign-in: the connector signs a client assertion with the app's key (RS256, ``x5t`` of
its certificate) and the fake token endpoint verifies it against the certificate registered for the
app; a certificate the app does not have fails the run without pruning."""
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from connectors.models import SyncRun
from connectors.services import source_create, source_sync
from connectors.sharepoint.auth import SignInFailed
from kbsearch.documents.credentials import source_credentials_set
from kbsearch.documents.models import Document

pytestmark = pytest.mark.django_db


def _key_and_certificate(name: str) -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30)).sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return key_pem, certificate.public_bytes(serialization.Encoding.PEM).decode()


def _source(hr, key: str, credentials: dict):
    source = source_create(key=key, name="SharePoint", connector="sharepoint", config={
        "tenant_id": hr.tenant.tenant_id, "client_id": "cert-app", "graph_url": hr.graph.graph_url,
        "token_url": hr.graph.token_url, "sites": [hr.site.id]})
    source_credentials_set(source=source, credentials=credentials)
    source.refresh_from_db()
    return source


def test_a_certificate_signs_in_and_a_foreign_one_is_refused(hr, credentials_key, tiny_encoder, index_backend):
    key_pem, certificate_pem = _key_and_certificate("kbsearch-connector")
    hr.tenant.apps.app_add(client_id="cert-app", certificate_pem=certificate_pem.encode())

    source = _source(hr, "sp-cert", {"private_key_pem": key_pem, "certificate_pem": certificate_pem})
    run = source_sync(source=source, encoder=tiny_encoder, index=index_backend)
    assert run.status == SyncRun.Status.SUCCEEDED, run.errors
    synced = Document.objects.filter(source=source).count()
    assert synced > 0

    other_key, other_certificate = _key_and_certificate("someone-else")
    source_credentials_set(source=source, credentials={"private_key_pem": other_key, "certificate_pem": other_certificate})
    source.refresh_from_db()
    with pytest.raises(SignInFailed, match=r"^sign-in refused \(401 invalid_client\)"):
        source_sync(source=source, full=True, encoder=tiny_encoder, index=index_backend)
    failed = SyncRun.objects.filter(source=source).first()
    assert failed.status == SyncRun.Status.FAILED and other_key not in str(failed.errors)
    assert Document.objects.filter(source=source).count() == synced  # nothing pruned
