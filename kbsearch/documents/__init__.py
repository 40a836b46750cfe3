"""Documents and their chunks and access lists: what kbsearch knows about each source's content."""
