"""The Confluence connector (Cloud and Data Center); importing the package registers it."""
from connectors.confluence.connector import ConfluenceConnector

__all__ = ["ConfluenceConnector"]
