"""Index backends behind one contract (``base``), chosen by a dotted path in settings (``registry``),
with the fusion and document ranking every backend shares. No Django models: the index is derived
from the database and only the registry reads settings."""
