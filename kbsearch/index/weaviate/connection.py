"""Connecting to Weaviate from the backend's options (REST and gRPC, API key, TLS).

Options come from settings (``KBSEARCH_WEAVIATE_*``, see README): ``url`` is the REST endpoint
(``https://`` means TLS); ``grpc_url`` defaults to the same host on port 50051 with the same TLS
choice; ``api_key`` is sent as a bearer key; ``ca_file`` names a PEM bundle for a private CA.
The client reads a CA bundle only from the environment (httpx's ``SSL_CERT_FILE`` with
``trust_env``, gRPC's ``GRPC_DEFAULT_SSL_ROOTS_FILE_PATH``), so ``ca_file`` fills both variables
when they are unset; ``trust_env`` is otherwise off so proxy variables meant for the internet do
not reroute index traffic.
"""
import os
from dataclasses import dataclass
from urllib.parse import urlsplit

import weaviate
from weaviate.classes.init import AdditionalConfig, Auth, Timeout

from kbsearch.index.base import IndexBackendError

DEFAULT_GRPC_PORT = 50051


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    secure: bool


def endpoint(url: str, *, default_port: int | None = None, secure: bool | None = None) -> Endpoint:
    """Host, port and TLS of ``url``; a bare ``host:port`` takes ``secure`` (default plain)."""
    parts = urlsplit(url if "://" in url else f"//{url}")
    if parts.scheme not in ("", "http", "https", "grpc", "grpcs") or not parts.hostname:
        raise IndexBackendError(f"Weaviate URL {url!r} is not an http(s) URL with a host")
    is_secure = parts.scheme in ("https", "grpcs") if parts.scheme else bool(secure)
    port = parts.port or default_port or (443 if is_secure else 80)
    return Endpoint(host=parts.hostname, port=port, secure=is_secure)


def connection_arguments(
    *, url: str, grpc_url: str = "", api_key: str = "", ca_file: str = "",
    query_timeout: float = 30, insert_timeout: float = 120,
) -> dict:
    """Keyword arguments for ``weaviate.connect_to_custom``."""
    if not url:
        raise IndexBackendError("the Weaviate index backend needs KBSEARCH_WEAVIATE_URL")
    http = endpoint(url)
    grpc = (
        endpoint(grpc_url, secure=http.secure) if grpc_url
        else Endpoint(host=http.host, port=DEFAULT_GRPC_PORT, secure=http.secure)
    )
    if ca_file and not os.path.isfile(ca_file):
        raise IndexBackendError(f"KBSEARCH_WEAVIATE_CA_FILE {ca_file!r} is not a file")
    return {
        "http_host": http.host, "http_port": http.port, "http_secure": http.secure,
        "grpc_host": grpc.host, "grpc_port": grpc.port, "grpc_secure": grpc.secure,
        "auth_credentials": Auth.api_key(api_key) if api_key else None,
        "additional_config": AdditionalConfig(
            timeout=Timeout(query=query_timeout, insert=insert_timeout, init=10), trust_env=bool(ca_file)
        ),
    }


def connect(*, ca_file: str = "", **options):
    """A connected client (checks REST and gRPC reachability and the server version)."""
    arguments = connection_arguments(ca_file=ca_file, **options)
    if ca_file:
        # The only way the client takes a CA bundle; an explicit environment setting wins.
        os.environ.setdefault("SSL_CERT_FILE", ca_file)
        os.environ.setdefault("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", ca_file)
    try:
        return weaviate.connect_to_custom(**arguments)
    except weaviate.exceptions.WeaviateBaseError as error:
        raise IndexBackendError(f"cannot connect to Weaviate at {options.get('url')}: {error}") from error
