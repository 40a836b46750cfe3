"""Fake remote services on loopback, for connector tests and benchmarks (no internet on the machine).

``http`` holds the generic part (a threaded loopback server, a request log, programmable faults);
``confluence`` is the Confluence Cloud / Data Center fake built on it; ``graph`` is the Microsoft
Graph (SharePoint Online) fake, with its own small server.
"""
