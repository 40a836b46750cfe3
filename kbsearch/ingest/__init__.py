"""From source files to chunks: Markdown/HTML/text parsers, token-bounded chunking and the input
type connectors deliver. No Django: connectors, ingest services and evaluation share it."""
