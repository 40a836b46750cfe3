"""Development tools run from the project folder: the throwaway OpenLDAP server (``slapd``), the demo runner."""
