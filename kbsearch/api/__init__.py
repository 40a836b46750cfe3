"""The REST API (Django REST framework): search, documents, feedback and clicks under /api/v1/."""
