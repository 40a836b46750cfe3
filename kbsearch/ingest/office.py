"""PDF, Word, Excel and PowerPoint readers for ``kbsearch.ingest.extract``.

Not written yet: no reader is registered, so these formats are refused with a clear reason.
"""
READERS: tuple = ()
