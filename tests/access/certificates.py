"""Throwaway certificates for the TLS directory tests: a CA, and a server certificate it signs.

Made with the ``cryptography`` package in a temporary folder, valid for a day, never reused. The
server certificate names ``localhost`` and ``127.0.0.1`` as subject alternative names: libldap
checks the name in the URL against them, so ``ldaps://127.0.0.1:...`` verifies without a hosts
entry. A second, unrelated CA (same subject name, different key) is what a "wrong CA" test trusts:
the chain cannot verify although every name matches.
"""
import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALID_FOR = datetime.timedelta(days=1)


@dataclass(frozen=True)
class Authority:
    """A CA: its certificate as a PEM file (what ``Directory.ca_file`` names) and its key."""

    certificate_file: Path
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class ServerCertificate:
    """A server's certificate and key as PEM files (slapd's TLSCertificateFile / TLSCertificateKeyFile)."""

    certificate_file: Path
    key_file: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kbsearch tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _validity(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return builder.not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + _VALID_FOR)


def authority_create(folder: Path, file_name: str = "ca.pem", common_name: str = "kbsearch test CA") -> Authority:
    """A self-signed CA written to ``folder / file_name``."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    certificate = _validity(builder).sign(key, hashes.SHA256())
    path = folder / file_name
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return Authority(certificate_file=path, certificate=certificate, key=key)


def server_certificate_create(folder: Path, authority: Authority) -> ServerCertificate:
    """A certificate for localhost / 127.0.0.1 signed by ``authority``, and its key, in ``folder``."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(authority.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.key.public_key()), critical=False)
    )
    certificate = _validity(builder).sign(authority.key, hashes.SHA256())
    certificate_file, key_file = folder / "server.pem", folder / "server.key"
    certificate_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption(),
    ))
    key_file.chmod(0o600)
    return ServerCertificate(certificate_file=certificate_file, key_file=key_file)
