"""Text embeddings for kbsearch: the e5 encoder, model resolution and offline model builds.

Importing this package asks OpenMP (used by torch) to put idle worker threads to sleep instead of
spinning. On this 2-core machine, shared with the web server, Celery and the database, spinning
threads made a two-query encode 17x slower (1.6 s instead of 0.09 s) whenever another process was
busy. The setting only takes effect if torch has not been imported yet, so entry points should set
OMP_WAIT_POLICY themselves too; an operator's own value always wins.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
