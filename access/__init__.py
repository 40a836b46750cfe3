"""Principals and permissions: who a user is, as document access lists name them."""
