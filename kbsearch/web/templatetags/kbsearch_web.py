"""Template filters for the search page."""
from django import template

register = template.Library()


@register.filter
def language_name(code: str, strings: dict) -> str:
    """The UI name of a document language code: ``{{ doc.language|language_name:t }}``."""
    return strings.get(f"lang_{code}", code)
