"""Template context: the UI strings in the language the browser asked for."""
from django.http import HttpRequest

from kbsearch.web.strings import html_language, ui_language
from kbsearch.web.strings import ui_strings as strings_for


def ui_strings(request: HttpRequest) -> dict:
    """``t`` (the strings), ``ui_lang`` (catalogue key) and ``html_lang`` (for the lang attribute)."""
    # LocaleMiddleware has already chosen from Accept-Language among settings.LANGUAGES.
    language = ui_language(getattr(request, "LANGUAGE_CODE", "") or "")
    return {"t": strings_for(language), "ui_lang": language, "html_lang": html_language(language)}
