"""The embedded default's database engine: Django's SQLite, creating the file's folder when needed.

SQLite creates a missing database file but not a missing folder. The folder (``var/`` by default)
used to be made when the settings were imported, a side effect in every process, even those on
PostgreSQL; this engine makes it just before the first connection instead. It also puts the file in
write-ahead-log mode (``base.DatabaseWrapper``).
"""
