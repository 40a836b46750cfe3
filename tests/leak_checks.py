"""Leak checks on every endpoint, for one user and the exact set of documents they may see.

Shared by the leak tests (``tests/search/test_leaks.py``: access from Django groups;
``tests/access/test_nested_group_leaks.py``: access only through nested directory groups). A test
states by hand what each user may see (``Expected``); the checks compare every endpoint with it:
search results, totals, source, language and (when stated) place facets, snippets and titles (no marker word of a
hidden document anywhere), the document itself (200 exactly for visible ids, one identical 404
for hidden and missing ones), feedback and clicks (accepted exactly for visible documents).

Documents are named ``(source key, external id)``; external ids end in ``.<language>.md``.
"""
import re
from dataclasses import dataclass

from kbsearch.analytics.models import Click, Feedback, QueryLog

Key = tuple[str, str]
LANGUAGE_LABELS = {"en": "English", "zh": "Chinese", "ja": "Japanese", "ko": "Korean"}
MISSING_ID = 10**12


@dataclass(frozen=True)
class Expected:
    """What each user may see, written by hand, and the synced documents' ids."""

    documents: dict[Key, int]  # every document: {(source key, external id): document id}
    visible: dict[str, set[Key]]  # username -> the documents they may see
    markers: dict[Key, str]  # the marker word each restricted document holds
    source_names: dict[str, str]  # source key -> its display name
    # Each document's place as (facet value, label); None: places are not checked. A document
    # missing from it is in no place.
    places: dict[Key, tuple[str, str]] | None = None

    def ids(self, name: str) -> set[int]:
        return {self.documents[key] for key in self.visible[name]}

    def facets(self, name: str) -> tuple[dict[str, int], dict[str, int]]:
        sources: dict[str, int] = {}
        languages: dict[str, int] = {}
        for key in self.visible[name]:
            sources[key[0]] = sources.get(key[0], 0) + 1
            languages[language_of(key)] = languages.get(language_of(key), 0) + 1
        return sources, languages

    def place_facet(self, name: str) -> dict[tuple[str, str], int]:
        """(value, label) -> count over the documents ``name`` may see."""
        counts: dict[tuple[str, str], int] = {}
        for key in self.visible[name]:
            if key in (self.places or {}):
                counts[self.places[key]] = counts.get(self.places[key], 0) + 1
        return counts

    def hidden_markers(self, name: str) -> set[str]:
        visible_markers = {self.markers[key] for key in self.visible[name] if key in self.markers}
        return set(self.markers.values()) - visible_markers


def language_of(key: Key) -> str:
    return key[1].rsplit(".", 2)[-2]


def page_facets(page: str, facet: str) -> dict[str, int]:
    block = re.search(rf'<ul class="facet" data-facet="{facet}">(.*?)</ul>', page, re.S)
    if block is None:
        return {}
    return {label: int(n) for label, n in re.findall(r'>([^<>]+?) <span class="count">(\d+)<', block.group(1))}


def without_csrf(content: bytes) -> str:
    """A page without its per-request CSRF token, so two renderings can be compared."""
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", content.decode())


def api_search_check(expected: Expected, name: str, client, query: str, *, names_no_marker: bool) -> str:
    """Search results, total, facets and text through the API; returns the response body as text.

    ``names_no_marker``: the query contains no marker word, so none may appear anywhere in the body.
    """
    sources, languages = expected.facets(name)
    response = client.get("/api/v1/search", {"q": query, "limit": 50})
    assert response.status_code == 200, response.content
    body = response.json()
    # Hybrid search returns every visible document (the vector leg has no threshold).
    assert {r["document_id"] for r in body["results"]} == expected.ids(name), (name, query)
    assert len(body["results"]) == body["total"] == len(expected.visible[name]), (name, query)
    assert {f["value"]: f["count"] for f in body["facets"]["source"]} == sources, (name, query)
    assert {f["value"]: f["count"] for f in body["facets"]["language"]} == languages, (name, query)
    if expected.places is not None:
        assert {(f["value"], f["label"]): f["count"] for f in body["facets"]["place"]} == expected.place_facet(name), (
            name, query)
    shown = " ".join(r[field] for r in body["results"] for field in ("title", "title_html", "snippet", "snippet_html"))
    for marker in expected.hidden_markers(name):
        assert marker not in shown.casefold(), (name, query, marker)
    text = response.content.decode()
    if names_no_marker:
        assert not any(marker in text.casefold() for marker in expected.hidden_markers(name)), (name, query)
    return text


def page_search_check(expected: Expected, name: str, client, query: str, *, names_no_marker: bool = True) -> str:
    """The search page: result ids, facets, the total shown, no hidden marker; returns the page.

    A query naming marker words is echoed in the search box, so markers are looked for only when it names none.
    """
    sources, languages = expected.facets(name)
    response = client.get("/", {"q": query})
    assert response.status_code == 200
    page = response.content.decode()
    shown = {int(i) for i in re.findall(r'class="result" data-document-id="(\d+)"', page)}
    assert shown == expected.ids(name), name
    assert page_facets(page, "source") == {expected.source_names[key]: n for key, n in sources.items()}, name
    assert page_facets(page, "language") == {LANGUAGE_LABELS[code]: n for code, n in languages.items()}, name
    if expected.places is not None:
        assert page_facets(page, "place") == {label: n for (_value, label), n in expected.place_facet(name).items()}, name
    if expected.visible[name]:
        assert f"of about {len(expected.visible[name])} (" in page, name
    for marker in expected.hidden_markers(name) if names_no_marker else ():
        assert marker not in page.casefold(), (name, marker)
    return page


def documents_check(expected: Expected, name: str, api, page) -> None:
    """Each document is 200 through the API and the page exactly when visible, else the missing 404."""
    missing_api = api.get(f"/api/v1/documents/{MISSING_ID}")
    missing_page = page.get(f"/documents/{MISSING_ID}/")
    assert missing_api.status_code == missing_page.status_code == 404
    for key, document_id in expected.documents.items():
        via_api = api.get(f"/api/v1/documents/{document_id}")
        via_page = page.get(f"/documents/{document_id}/")
        if key in expected.visible[name]:
            assert via_api.status_code == via_page.status_code == 200, (name, key)
            assert via_api.json()["id"] == document_id
        else:
            assert via_api.status_code == 404 and via_api.json() == missing_api.json(), (name, key)
            assert via_page.status_code == 404, (name, key)
            assert without_csrf(via_page.content) == without_csrf(missing_page.content), (name, key)


def feedback_and_clicks_check(expected: Expected, name: str, user, api, page) -> None:
    """Votes and clicks (API and page) are accepted exactly for visible documents, and stored only for them."""
    query_id = api.get("/api/v1/search", {"q": "VPN"}).json()["query_id"]
    page.get("/", {"q": "VPN"})
    page_query_id = QueryLog.objects.filter(user=user, channel="web").latest("created_at").pk
    before_votes = Feedback.objects.filter(user=user).count()
    before_clicks = Click.objects.filter(user=user).count()

    def send(document_id):
        return (
            api.post("/api/v1/feedback", {"document_id": document_id, "value": "up", "query_id": query_id}, format="json"),
            api.post("/api/v1/clicks", {"document_id": document_id, "rank": 1, "query_id": query_id}, format="json"),
            page.post("/feedback/", {"document_id": document_id, "query_id": page_query_id, "value": "down"}),
            page.get(f"/documents/{document_id}/", {"qid": page_query_id, "rank": 2}),
        )

    missing = send(MISSING_ID)
    assert [r.status_code for r in missing] == [404, 404, 404, 404]
    for key, document_id in expected.documents.items():
        feedback, click, form, opened = send(document_id)
        if key in expected.visible[name]:
            assert (feedback.status_code, click.status_code, form.status_code, opened.status_code) == (201, 201, 303, 200)
        else:
            assert feedback.status_code == click.status_code == form.status_code == opened.status_code == 404
            assert feedback.json() == click.json() == missing[0].json() == missing[1].json(), (name, key)
            assert without_csrf(form.content) == without_csrf(missing[2].content), (name, key)
    judged = expected.ids(name)
    new_votes = Feedback.objects.filter(user=user).order_by("pk")[before_votes:]
    new_clicks = Click.objects.filter(user=user).order_by("pk")[before_clicks:]
    assert {vote.document_id for vote in new_votes} == judged
    assert len(new_votes) == 2 * len(judged)  # API vote and form vote
    assert {click.document_id for click in new_clicks} == judged
    assert len(new_clicks) == 2 * len(judged)  # API click and page open
