"""The permissions pages, served inside the admin site (``admin_view``: staff only, others go to
the admin sign-in). They also need the permissions to view directory users and documents, since
they show both. Inputs come by GET so that the user and document pages can link to an answer."""
from functools import wraps

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse

from access.explanations import user_access_explain
from kbsearch.permissions.forms import AccountDocumentForm, AccountForm, DocumentForm
from kbsearch.permissions.selectors import document_access_explain, document_audience

REQUIRED_PERMISSIONS = ("access.view_directoryuser", "documents.view_document")


def _permitted(view):
    """Refuse staff without the view permissions before the form is read: the form's errors say
    whether an account or a document exists, and answering can cost thousands of resolver calls."""

    @wraps(view)
    def guarded(request):
        if not request.user.has_perms(REQUIRED_PERMISSIONS):
            raise PermissionDenied
        return view(request)

    return guarded


def _render(request, template: str, title: str, context: dict) -> TemplateResponse:
    return TemplateResponse(request, template, {**admin.site.each_context(request), "title": title, **context})


@_permitted
def effective_access(request):
    form = AccountForm(request.GET or None)
    access = user_access_explain(user=form.cleaned_data["username"]) if form.is_valid() else None
    return _render(request, "admin/permissions/effective_access.html", "Effective access of a user",
                   {"form": form, "access": access})


@_permitted
def why(request):
    form = AccountDocumentForm(request.GET or None)
    verdict = None
    if form.is_valid():
        verdict = document_access_explain(user=form.cleaned_data["username"], document=form.cleaned_data["document"])
    return _render(request, "admin/permissions/why.html", "Why can a user see a document?",
                   {"form": form, "verdict": verdict})


@_permitted
def who(request):
    form = DocumentForm(request.GET or None)
    audience = document_audience(document=form.cleaned_data["document"]) if form.is_valid() else None
    return _render(request, "admin/permissions/who.html", "Who can see a document?",
                   {"form": form, "audience": audience})
