"""``/api/docs/``: Swagger UI over ``/api/schema/``, for signed-in users.

Access to both is ``kbsearch.api.permissions.ApiDocsAccess`` (``SPECTACULAR_SETTINGS["SERVE_PERMISSIONS"]``).
A program asking for the schema without credentials gets the API's 401; a person opening the docs
page in a browser without a session is sent to the sign-in page and back.
"""
from django.contrib.auth.views import redirect_to_login
from drf_spectacular.views import SpectacularSwaggerView
from rest_framework.exceptions import NotAuthenticated


class ApiDocsView(SpectacularSwaggerView):
    def handle_exception(self, exc):
        if isinstance(exc, NotAuthenticated):
            return redirect_to_login(self.request.get_full_path())
        return super().handle_exception(exc)
