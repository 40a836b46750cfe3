"""Admin pages of the relevance loop; each page lives in its own module, imported here so the admin
site registers it."""
from kbsearch.relevance import admin_models, admin_training, admin_training_data  # noqa: F401
