"""The admin report tests search through the page, on the page tests' knowledge base."""
from tests.web.conftest import _fresh_rate_limits, _no_background_model_loading, kb, page_client, users  # noqa: F401
