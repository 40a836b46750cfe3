"""Searching as a user: the use cases behind the API and the search page (``search_run``,
``search_page_run``) and the ``search`` command."""
