"""The search page, the document page and the no-JavaScript feedback form.

Views only translate between HTTP and the services the API uses too (``search_page_run``,
``access_document_by_id``, ``feedback_record``, ``click_record``), so the page cannot show or
accept anything the API would not. Opening a result goes through the document page with the
search's id and the result's rank in the address, which records the click without JavaScript.
Each route spends the same rate-limit bucket as its API endpoint (``kbsearch.web.throttling``).
"""
import math
from dataclasses import dataclass, replace
from urllib.parse import urlencode

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from kbsearch.analytics.models import Feedback
from kbsearch.analytics.selectors import UnknownQueryLog
from kbsearch.analytics.services import click_record, feedback_record
from kbsearch.documents.ids import is_storable_id
from kbsearch.documents.selectors import access_document_by_id
from kbsearch.search.pages import MAX_OFFSET, InvalidSearchFilter, search_page_run
from kbsearch.search.throttles import DocumentRateThrottle, FeedbackRateThrottle, SearchRateThrottle
from kbsearch.text.highlight import NO_TERMS, highlight_all, highlight_terms
from kbsearch.text.query import MAX_QUERY_CHARS, InvalidQuery
from kbsearch.web.strings import ui_language, ui_text
from kbsearch.web.throttling import rate_limited, throttle_wait
from kbsearch.web.warmup import encoder_warm_in_background

PAGE_SIZE = 10
_LAST_PAGE = MAX_OFFSET // PAGE_SIZE + 1
# Highlighting a whole document costs time proportional to its length; huge ones are shown plain.
_HIGHLIGHT_BODY_CHARS = 200_000


def _language(request: HttpRequest) -> str:
    return ui_language(getattr(request, "LANGUAGE_CODE", ""))


def _positive_int(value: str | None, default: int | None = None) -> int | None:
    try:
        number = int(value or "")
    except ValueError:
        return default
    return number if is_storable_id(number) else default


@dataclass(frozen=True)
class _Chosen:
    """The filters in the page's address, in the order they were given."""

    sources: list[str]
    languages: list[str]
    places: list[str]

    @classmethod
    def of(cls, request: HttpRequest) -> "_Chosen":
        return cls(request.GET.getlist("source"), request.GET.getlist("lang"), request.GET.getlist("place"))

    def __bool__(self) -> bool:
        return bool(self.sources or self.languages or self.places)

    def url(self, query: str, page: int = 1) -> str:
        params = [("q", query)] + [("source", s) for s in self.sources] + [("lang", lang) for lang in self.languages]
        params += [("place", place) for place in self.places]
        if page > 1:
            params.append(("page", str(page)))
        return "?" + urlencode(params)

    def toggled(self, facet: str, value: str) -> "_Chosen":
        """These filters with ``value`` of ``facet`` added, or removed when it was chosen."""
        field = _FACET_FIELDS[facet]
        values = getattr(self, field)
        return replace(self, **{field: [v for v in values if v != value] if value in values else values + [value]})


# Facet name (as ``search_page_run`` names them) -> the field of ``_Chosen`` holding its values.
_FACET_FIELDS = {"source": "sources", "language": "languages", "place": "places"}


def _facet_label(facet, name: str, lang: str) -> str:
    return ui_text(lang, f"lang_{facet.value}") if name == "language" else facet.label


def _facet_links(page, query: str, chosen: _Chosen, lang: str) -> dict:
    """Each facet value as a link that adds or removes it as a filter (page 1 of the new search)."""
    return {
        name: [
            {
                "label": _facet_label(facet, name, lang),
                "count": facet.count,
                "active": facet.value in getattr(chosen, field),
                "url": chosen.toggled(name, facet.value).url(query),
            }
            for facet in page.facets[name]
        ]
        for name, field in _FACET_FIELDS.items()
    }


def _active_filters(page, query: str, chosen: _Chosen, lang: str) -> list[dict]:
    """The chosen filters, each a link that removes it."""
    links = []
    for name, field in _FACET_FIELDS.items():
        shown = {facet.value: _facet_label(facet, name, lang) for facet in page.facets[name]}
        for value in getattr(chosen, field):
            label = ui_text(lang, f"lang_{value}") if name == "language" else shown.get(value, value)
            links.append({"label": label, "url": chosen.toggled(name, value).url(query),
                          "remove_label": ui_text(lang, "remove_filter", value=label)})
    return links


def _pagination(page, query: str, chosen: _Chosen, number: int, lang: str) -> dict:
    last = min(_LAST_PAGE, max(1, math.ceil(page.total / PAGE_SIZE)))
    if not page.exhausted and page.next_offset is not None:
        last = max(last, number + 1)
    window = range(max(1, number - 3), min(last, number + 3) + 1)
    return {
        "previous": chosen.url(query, number - 1) if number > 1 else None,
        "next": chosen.url(query, number + 1) if number < last else None,
        "pages": [
            {"number": n, "url": chosen.url(query, n), "current": n == number, "label": ui_text(lang, "page_n", n=n)}
            for n in window
        ],
    }


def _error_message(error: InvalidQuery, lang: str) -> str:
    if isinstance(error, InvalidSearchFilter):
        return ui_text(lang, "error_filter")
    if "limit is" in str(error):
        return ui_text(lang, "error_too_long", limit=MAX_QUERY_CHARS)
    return str(error)


class LoginView(auth_views.LoginView):
    """Django's sign-in, which also starts loading the model so the first search is quick."""

    template_name = "web/login.html"
    redirect_authenticated_user = True

    def get(self, request, *args, **kwargs):
        encoder_warm_in_background()
        return super().get(request, *args, **kwargs)


@require_GET
@login_required
def search_page(request: HttpRequest) -> HttpResponse:
    lang = _language(request)
    query = request.GET.get("q", "")
    chosen = _Chosen.of(request)
    context = {"query": query, "chosen": chosen}
    if not query.strip():
        return render(request, "web/search.html", context)
    seconds = throttle_wait(request, SearchRateThrottle)
    if seconds is not None:
        context["error"] = ui_text(lang, "error_rate", seconds=seconds)
        response = render(request, "web/search.html", context, status=429)
        response["Retry-After"] = str(seconds)
        return response
    number = min(_positive_int(request.GET.get("page"), 1), _LAST_PAGE)
    try:
        page = search_page_run(
            user=request.user,
            query=query,
            channel="web",
            sources=chosen.sources,
            languages=chosen.languages,
            places=chosen.places,
            limit=PAGE_SIZE,
            offset=(number - 1) * PAGE_SIZE,
        )
    except InvalidQuery as error:
        context.update(error=_error_message(error, lang), clear_url=_Chosen([], [], []).url(query))
        return render(request, "web/search.html", context, status=400)
    seconds = f"{page.took_ms / 1000:.2f}"
    if page.items:
        summary = ui_text(
            lang, "summary", start=page.offset + 1, end=page.offset + len(page.items),
            total=max(page.total, page.offset + len(page.items)), seconds=seconds,
        )
    else:
        summary = ui_text(lang, "summary_none", seconds=seconds)
    context.update(
        page=page,
        summary=summary,
        facet_links=_facet_links(page, query, chosen, lang),
        active_filters=_active_filters(page, query, chosen, lang),
        clear_url=_Chosen([], [], []).url(query),
        first_page_url=chosen.url(query),
        pagination=_pagination(page, query, chosen, number, lang),
        no_results_title=ui_text(lang, "no_results_title", query=page.query),
        page_number=number,
    )
    return render(request, "web/search.html", context)


@require_GET
@login_required
@rate_limited(DocumentRateThrottle)
def document_page(request: HttpRequest, document_id: int) -> HttpResponse:
    document = access_document_by_id(document_id, request.user)
    query_id, rank = _positive_int(request.GET.get("qid")), _positive_int(request.GET.get("rank"))
    query_text = ""
    # The click spends the clicks API's bucket too; past its limit the document still opens,
    # unrecorded, as the API would refuse that click.
    if query_id is not None and rank is not None and throttle_wait(request, FeedbackRateThrottle) is None:
        try:
            click, _created = click_record(user=request.user, document_id=document.pk, rank=rank, query_id=query_id)
            query_text = click.query
        except (UnknownQueryLog, InvalidQuery, ValueError):
            pass  # a stale or edited link still opens the document; it just records no click
    body = document.body
    if query_text and len(body) <= _HIGHLIGHT_BODY_CHARS:
        body_html = highlight_all(body, highlight_terms(query_text)).html()
    else:
        body_html = highlight_all(body, NO_TERMS).html()
    back = request.GET.get("back", "")
    context = {
        "document": document,
        "body_html": body_html,
        "updated_at": document.source_updated_at or document.updated_at,
        "back_url": back if back.startswith("/?") or back.startswith("?") else "",
    }
    return render(request, "web/document.html", context)


@require_POST
@login_required
@rate_limited(FeedbackRateThrottle)
def feedback_form(request: HttpRequest) -> HttpResponse:
    """Thumbs up/down for browsers without JavaScript (the script posts to the API instead)."""
    value = {"up": Feedback.Value.UP, "down": Feedback.Value.DOWN}.get(request.POST.get("value", ""))
    document_id = _positive_int(request.POST.get("document_id"))
    query_id = _positive_int(request.POST.get("query_id"))
    if value is None or document_id is None or query_id is None:
        return HttpResponse("document_id, query_id and value (up or down) are required", status=400)
    try:
        feedback_record(
            user=request.user,
            document_id=document_id,
            value=value,
            query_id=query_id,
            rank=_positive_int(request.POST.get("rank")),
        )
    except (UnknownQueryLog, InvalidQuery) as error:
        return HttpResponse(str(error), status=400, content_type="text/plain; charset=utf-8")
    next_url = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        next_url = "/"
    return HttpResponseRedirect(next_url, status=303)
