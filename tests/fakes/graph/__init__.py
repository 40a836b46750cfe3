"""A fake Microsoft Graph v1.0 (SharePoint Online files, sites, pages, permissions) for connector tests.

``model.GraphTenant`` is the in-memory tenant a test drives from Python; ``server.FakeGraphServer``
serves it on loopback (with ``faults`` and a request ``log``); ``tests.fakes.graph_testing`` has
the pytest fixtures; ``schemas`` turns the official type descriptions into JSON Schemas to check answers with.
"""
