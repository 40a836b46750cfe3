"""WSGI entry point."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kbsearch.settings")
# Idle OpenMP threads must sleep, not spin: spinning starves the other core (see embeddings/).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
application = get_wsgi_application()
