"""Template context: the UI strings in the language the browser asked for; the account's name."""
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from access.selectors import directory_display_name
from kbsearch.web.strings import html_language, ui_language
from kbsearch.web.strings import ui_strings as strings_for


def ui_strings(request: HttpRequest) -> dict:
    """``t`` (the strings), ``ui_lang`` (catalogue key) and ``html_lang`` (for the lang attribute)."""
    # LocaleMiddleware has already chosen from Accept-Language among settings.LANGUAGES.
    language = ui_language(getattr(request, "LANGUAGE_CODE", "") or "")
    return {"t": strings_for(language), "ui_lang": language, "html_lang": html_language(language)}


def account_name(request: HttpRequest) -> dict:
    """``account_name``: the directory's display name (given order kept for CJK names), else the
    account's full name, else its username; looked up only when a template shows it."""
    user = getattr(request, "user", None)

    def name() -> str:
        if user is None or not user.is_authenticated:
            return ""
        return directory_display_name(username=user.get_username()) or user.get_full_name() or user.get_username()

    return {"account_name": SimpleLazyObject(name)}
