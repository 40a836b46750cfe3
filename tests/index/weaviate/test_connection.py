"""Connection arguments from the settings options, and construction without a server."""
import pytest

from kbsearch.index.base import IndexBackendError
from kbsearch.index.weaviate import WeaviateIndexBackend
from kbsearch.index.weaviate.connection import connection_arguments


def test_https_url_means_tls_on_rest_and_grpc_with_the_api_key():
    arguments = connection_arguments(url="https://weaviate.corp:8443", api_key="secret")
    assert (arguments["http_host"], arguments["http_port"], arguments["http_secure"]) == ("weaviate.corp", 8443, True)
    assert (arguments["grpc_host"], arguments["grpc_port"], arguments["grpc_secure"]) == ("weaviate.corp", 50051, True)
    assert arguments["auth_credentials"].api_key == "secret"
    assert arguments["additional_config"].trust_env is False


def test_plain_url_and_explicit_grpc_endpoint():
    arguments = connection_arguments(url="http://localhost:8080", grpc_url="grpc.local:6000")
    assert (arguments["http_port"], arguments["http_secure"], arguments["auth_credentials"]) == (8080, False, None)
    assert (arguments["grpc_host"], arguments["grpc_port"], arguments["grpc_secure"]) == ("grpc.local", 6000, False)


def test_missing_url_and_missing_ca_file_are_clear_errors(tmp_path):
    with pytest.raises(IndexBackendError, match="KBSEARCH_WEAVIATE_URL"):
        connection_arguments(url="")
    with pytest.raises(IndexBackendError, match="CA_FILE"):
        connection_arguments(url="https://w", ca_file=str(tmp_path / "missing.pem"))


def test_backend_builds_from_the_settings_options_without_connecting():
    backend = WeaviateIndexBackend(url="http://localhost:1", api_key="", collection="KbsearchTest_abc", grpc_url="",
                                   ca_file="", delete_limit=10000)
    assert backend.alias == "KbsearchTest_abc" and backend._client is None  # connects on first use only
    backend.close()
