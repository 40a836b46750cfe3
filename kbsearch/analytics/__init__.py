"""What searching leaves behind and what it tells us: the query log, feedback and clicks (models,
the services that record them, the selectors and admin reports that read them)."""
