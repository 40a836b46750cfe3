"""The permissions pages' inputs: an account by username and a document by id, checked with clear errors."""
from django import forms
from django.contrib.auth import get_user_model

from kbsearch.permissions.selectors import document_for_admin


def _account(username: str):
    """The account named exactly ``username``, else the one account named so ignoring case."""
    model = get_user_model()
    manager = model._default_manager
    exact = manager.filter(**{model.USERNAME_FIELD: username}).first()
    if exact is not None:
        return exact
    matches = [user for user in manager.filter(**{f"{model.USERNAME_FIELD}__iexact": username})
               if user.get_username().casefold() == username.casefold()]
    if not matches:
        raise forms.ValidationError(f"No account is named {username!r}. (Directory users get one at their first sign-in.)")
    if len(matches) > 1:
        raise forms.ValidationError(f"Several accounts are named {username!r} ignoring case; type the exact name.")
    return matches[0]


class AccountField(forms.CharField):
    def clean(self, value):
        return _account(super().clean(value).strip())


class DocumentField(forms.IntegerField):
    def __init__(self, **kwargs) -> None:
        super().__init__(min_value=1, label="document id", **kwargs)

    def clean(self, value):
        document_id = super().clean(value)
        document = document_for_admin(document_id=document_id)
        if document is None:
            raise forms.ValidationError(f"No document has id {document_id}.")
        return document


class AccountForm(forms.Form):
    username = AccountField(max_length=256)


class DocumentForm(forms.Form):
    document = DocumentField()


class AccountDocumentForm(forms.Form):
    username = AccountField(max_length=256)
    document = DocumentField()
