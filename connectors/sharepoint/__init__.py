"""SharePoint Online over Microsoft Graph with app credentials: see ``connector.py``.

``auth`` signs in (client secret or certificate), ``client`` calls Graph (throttling, retries,
error classes), ``permissions`` turns item permissions into principals, ``reading`` turns files
and pages into documents, ``connector`` walks sites, libraries (delta) and pages.
"""
