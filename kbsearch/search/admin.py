"""Admin for the synonym and acronym sets the keyword (BM25) leg is expanded with.

Plain model permissions decide who may list, add, change or delete sets (a staff member needs
``search.add_synonymset`` and so on; superusers have them all). The change page shows each phrase
as the analyzer splits it, since that is what matches: Chinese and Japanese become character
pairs, English plurals fold, stopwords drop. Saving or deleting a set bumps the synonym revision
(``kbsearch.search.synonyms``), so every search process uses the change at its next search.
"""
from django.contrib import admin
from django.utils.html import format_html_join

from kbsearch.search.models import SynonymSet, phrase_lines
from kbsearch.text.synonyms import phrase_terms


@admin.register(SynonymSet)
class SynonymSetAdmin(admin.ModelAdmin):
    list_display = ("__str__", "kind", "language", "enabled", "updated_at")
    list_editable = ("enabled",)
    list_filter = ("enabled", "kind", "language")
    search_fields = ("terms", "expansions", "note")
    readonly_fields = ("analysed", "created_at", "updated_at")
    fields = ("kind", "terms", "expansions", "language", "enabled", "note", "analysed", "created_at", "updated_at")

    @admin.display(description="As the search analyzer sees it")
    def analysed(self, obj: SynonymSet) -> str:
        if obj is None or not obj.pk:
            return "Shown after saving."
        phrases = phrase_lines(obj.terms) + phrase_lines(obj.expansions)
        return format_html_join(
            "", "<div><code>{}</code> &rarr; <code>{}</code></div>",
            ((phrase, " ".join(phrase_terms(phrase)) or "(nothing searchable)") for phrase in phrases),
        )
