"""``DatabaseWrapper`` for ENGINE ``kbsearch.sqlite`` (Django loads ``<ENGINE>.base``)."""
from pathlib import Path

from django.db.backends.sqlite3 import base


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params):
        name = str(conn_params.get("database", ""))
        # In-memory databases (":memory:", "file:...?mode=memory") have no folder to create.
        if name and name != ":memory:" and not name.startswith("file:"):
            Path(name).parent.mkdir(parents=True, exist_ok=True)
        return super().get_new_connection(conn_params)
