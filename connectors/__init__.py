"""Connectors: bring documents and their permissions in from file shares, Confluence and SharePoint."""
