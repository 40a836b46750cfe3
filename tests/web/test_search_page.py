"""The server-rendered search page: sign-in, results, filters, paging, help, feedback, languages."""
import re

import pytest
from django.test import Client

from kbsearch.analytics.models import Click, Feedback, QueryLog
from kbsearch.web.strings import STRINGS
from tests.keyword_encoder import KeywordEncoder

pytestmark = pytest.mark.django_db


def html(response) -> str:
    return response.content.decode()


def result_ids(response) -> list[int]:
    return [int(i) for i in re.findall(r'class="result" data-document-id="(\d+)"', html(response))]


def test_the_page_needs_a_sign_in_and_the_login_page_works(users):
    response = Client().get("/?q=vpn")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/?next=")
    login = Client().get("/accounts/login/")
    assert login.status_code == 200 and 'name="username"' in html(login)
    client = Client()
    signed_in = client.post("/accounts/login/", {"username": "alice", "password": "pw-alice", "next": "/?q=vpn"})
    assert signed_in.status_code == 302 and signed_in["Location"] == "/?q=vpn"
    wrong = Client().post("/accounts/login/", {"username": "alice", "password": "nope"})
    assert wrong.status_code == 200 and STRINGS["en"]["sign_in_failed"] in html(wrong)


# Under this geometry the English VPN guide, the only document with both "VPN" and "gateway", is
# also the nearest to the query "VPN gateway" (see KeywordEncoder): first in both legs by construction.
@pytest.mark.parametrize("kb_encoder", [KeywordEncoder(["vpn", "gateway"])], ids=["keyword-geometry"])
def test_results_have_highlighted_snippets_links_and_feedback_buttons(page_client, kb):
    response = page_client("alice").get("/", {"q": "VPN gateway"})
    assert response.status_code == 200
    page = html(response)
    assert result_ids(response)[0] == kb["public/vpn.en.md"].pk
    assert "<mark>VPN</mark>" in page and "<mark>gateway</mark> if latency &lt; 50 ms &amp; retry" in page  # text is escaped
    log = QueryLog.objects.get()
    assert log.channel == "web" and log.query == "VPN gateway"
    assert f'/documents/{kb["public/vpn.en.md"].pk}/?qid={log.pk}&amp;rank=1' in page
    assert kb["public/vpn.en.md"].url in page  # link to the original
    assert page.count('name="value" value="up"') == len(result_ids(response))
    assert 'aria-label="Helpful"' in page and 'aria-label="Not helpful"' in page


def test_cjk_queries_are_highlighted(page_client, kb):
    page = html(page_client("erin").get("/", {"q": "数据库"}))
    assert "<mark>数据库</mark>" in page
    page = html(page_client("erin").get("/", {"q": "パスワード"}))
    assert "<mark>パスワード</mark>" in page


def facet_counts(response, facet: str) -> dict[str, int]:
    """The page's counts of one facet, by label."""
    block = re.search(rf'<ul class="facet" data-facet="{facet}">(.*?)</ul>', html(response), re.S)
    return {label: int(count) for label, count in re.findall(r'>([^<>]+?) <span class="count">(\d+)<', block.group(1))}


def test_hidden_documents_are_not_shown_or_counted(page_client, kb):
    public = {"public/vpn.en.md", "public/database.zh.md", "public/password.ja.md", "public/meeting.ko.md"}
    expected = {"alice": public | {"hr/salary.en.md"}, "erin": public}
    languages = {"alice": {"English": 2, "Chinese": 1, "Japanese": 1, "Korean": 1},
                 "erin": {"English": 1, "Chinese": 1, "Japanese": 1, "Korean": 1}}
    for name in ("alice", "erin"):
        response = page_client(name).get("/", {"q": "VPN salary Osaka"})
        # Hybrid search returns every visible document (the vector leg has no threshold).
        assert set(result_ids(response)) == {kb[path].pk for path in expected[name]}, name
        assert "Osaka office" not in html(response) and "secret draft" not in html(response)
        assert facet_counts(response, "language") == languages[name], name
        assert facet_counts(response, "source") == {"Shared drive": len(expected[name])}, name


def test_facet_links_filter_and_active_filters_can_be_removed(page_client, kb):
    client = page_client("alice")
    page = html(client.get("/", {"q": "VPN"}))
    link = re.search(r'<a href="(\?q=VPN&amp;lang=ja)"', page)
    assert link, "a language facet links to the filtered search"
    filtered = client.get("/" + link.group(1).replace("&amp;", "&"))
    assert result_ids(filtered) == [kb["public/password.ja.md"].pk]
    assert 'aria-current="true"' in html(filtered)
    assert '<a class="chip" href="?q=VPN"' in html(filtered)  # removing the filter


def test_paging_links_and_past_the_end(page_client, kb):
    client = page_client("alice")
    first = client.get("/", {"q": "VPN"})
    assert len(result_ids(first)) == 5 and "Page 2" not in html(first)  # one page only
    past = client.get("/", {"q": "VPN", "page": "50"})
    assert past.status_code == 200 and result_ids(past) == []
    assert STRINGS["en"]["past_end"] in html(past)
    nonsense = client.get("/", {"q": "VPN", "page": "-3"})
    assert nonsense.status_code == 200 and len(result_ids(nonsense)) == 5


def test_no_results_page_explains_what_to_try(page_client, kb):
    # Hybrid search finds neighbours by meaning for any query, so a filter that no document
    # passes (no document is of undetermined language) is what empties the page here.
    response = page_client("alice").get("/", {"q": "VPN", "lang": "und"})
    page = html(response)
    assert response.status_code == 200 and result_ids(response) == []
    assert "No results for “VPN”" in page and STRINGS["en"]["no_results_spelling"] in page
    assert STRINGS["en"]["no_results_filters"] in page


@pytest.mark.parametrize(
    ("params", "status", "text"),
    [
        ({"q": "x" * 10_000}, 400, STRINGS["en"]["error_too_long"].format(limit=1000)),
        ({"q": "vpn", "lang": "klingon"}, 400, STRINGS["en"]["error_filter"]),
        ({"q": "vpn", "source": "nope"}, 400, STRINGS["en"]["error_filter"]),
        ({"q": "\x00\x01"}, 400, "query is empty"),
        ({"q": ""}, 200, STRINGS["en"]["welcome"]),
    ],
)
def test_bad_input_gets_a_message_not_a_server_error(page_client, kb, params, status, text):
    response = page_client("alice").get("/", params)
    assert response.status_code == status and text in html(response)


def test_page_searches_share_the_api_rate_limit_bucket(page_client, kb, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"search": "1/minute"}}
    client = page_client("alice")
    assert client.get("/", {"q": "vpn"}).status_code == 200
    limited = client.get("/", {"q": "vpn"})
    assert limited.status_code == 429 and "Too many searches" in html(limited) and limited["Retry-After"]


@pytest.mark.parametrize(
    ("accept_language", "key", "lang_attribute"),
    [("en-US,en;q=0.9", "en", "en"), ("zh-CN,zh;q=0.9", "zh", "zh-Hans"), ("ja,en;q=0.5", "ja", "ja"),
     ("ko-KR", "ko", "ko"), ("fr-FR", "en", "en"), ("zh-TW", "zh", "zh-Hans")],
)
def test_ui_text_follows_the_browser_language(page_client, kb, accept_language, key, lang_attribute):
    page = html(page_client("alice", accept_language).get("/", {"q": "VPN"}))
    assert f'<html lang="{lang_attribute}">' in page
    for name in ("search_button", "sign_out", "filter_language", "helpful", "lang_en"):
        assert STRINGS[key][name] in page, name


def test_document_page_shows_text_and_records_the_click(page_client, users, kb):
    client = page_client("alice")
    search = client.get("/", {"q": "VPN gateway"})
    log = QueryLog.objects.get()
    document = kb["public/vpn.en.md"]
    response = client.get(f"/documents/{document.pk}/", {"qid": log.pk, "rank": 1, "back": "/?q=VPN+gateway"})
    assert search.status_code == response.status_code == 200
    page = html(response)
    assert "<mark>gateway</mark>" in page and 'href="/?q=VPN+gateway"' in page
    click = Click.objects.get()
    assert (click.user, click.document, click.rank, click.query_log) == (users["alice"], document, 1, log)
    client.get(f"/documents/{document.pk}/", {"qid": log.pk, "rank": 1})  # reload: still one click
    assert Click.objects.count() == 1
    assert client.get(f"/documents/{document.pk}/", {"qid": "999999999", "rank": "x"}).status_code == 200
    assert client.get(f"/documents/{document.pk}/", {"back": "https://evil.example/"}).content.count(b"evil") == 0


def test_hidden_documents_are_404_on_the_page_too(page_client, kb):
    client = page_client("erin")
    assert client.get(f"/documents/{kb['hr/salary.en.md'].pk}/").status_code == 404
    assert client.get(f"/documents/{kb['drafts/osaka.en.md'].pk}/").status_code == 404
    assert client.get("/documents/99999999999999999999/").status_code == 404
    assert not Click.objects.exists()


def test_feedback_form_works_without_javascript(page_client, users, kb):
    client = page_client("alice")
    client.get("/", {"q": "salary"})
    log = QueryLog.objects.get()
    document = kb["hr/salary.en.md"]
    form = {"document_id": document.pk, "query_id": log.pk, "rank": 1, "value": "up", "next": "/?q=salary"}
    response = client.post("/feedback/", form)
    assert response.status_code == 303 and response["Location"] == "/?q=salary"
    feedback = Feedback.objects.get()
    assert (feedback.user, feedback.document, feedback.value, feedback.query) == (users["alice"], document, 1, "salary")
    offsite = client.post("/feedback/", {**form, "value": "down", "next": "https://evil.example/"})
    assert offsite["Location"] == "/"
    hidden = page_client("erin").post("/feedback/", {**form, "query_id": log.pk})
    assert hidden.status_code == 404
    assert client.post("/feedback/", {**form, "value": "meh"}).status_code == 400


def test_every_language_has_every_string_with_the_same_placeholders():
    placeholders = lambda text: sorted(re.findall(r"{(\w+)}", text))  # noqa: E731
    english = STRINGS["en"]
    assert set(STRINGS) == {"en", "zh", "ja", "ko"}
    for language, strings in STRINGS.items():
        assert set(strings) == set(english), language
        for key, text in strings.items():
            assert text.strip() and placeholders(text) == placeholders(english[key]), (language, key)


def test_the_sign_in_page_starts_loading_the_model_once(db, settings, monkeypatch):
    import threading

    from kbsearch.web import warmup

    loads = []
    done = threading.Event()
    monkeypatch.setattr(warmup, "_started", threading.Event())
    monkeypatch.setattr(warmup, "_load", lambda: (loads.append(1), done.set()))
    settings.KBSEARCH_WARM_ENCODER = True
    assert Client().get("/accounts/login/").status_code == 200
    assert done.wait(10)
    Client().get("/accounts/login/")
    assert loads == [1]
