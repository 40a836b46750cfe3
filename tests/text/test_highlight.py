"""Snippet selection and highlighting (kbsearch.text.highlight); pure Python, no database."""
from kbsearch.text.highlight import Highlighted, highlight_all, highlight_snippet, highlight_terms


def marked(result: Highlighted) -> list[str]:
    return [result.text[start:end] for start, end in result.spans]


def test_overlapping_cjk_bigrams_merge_into_one_mark():
    result = highlight_all("我们的数据库很大，数据库很安全。", highlight_terms("数据库"))
    assert marked(result) == ["数据库", "数据库"]
    assert result.html() == "我们的<mark>数据库</mark>很大，<mark>数据库</mark>很安全。"


def test_japanese_and_korean_runs_mark_only_the_matched_characters():
    assert marked(highlight_all("パスワードを忘れた場合", highlight_terms("パスワード"))) == ["パスワード"]
    assert marked(highlight_all("회사에서 회의실 예약은", highlight_terms("회의실 예약"))) == ["회의실", "예약"]


def test_words_match_as_the_analyzer_matches_them():
    text = "Google’s VPN: don't panic, ＶＰＮ works; vpnclient does not."
    result = highlight_all(text, highlight_terms("google VPN dont"))
    # Possessive and full-width forms match; a longer word containing the term does not.
    assert marked(result) == ["Google’s", "VPN", "don't", "ＶＰＮ"]


def test_stopwords_are_not_marked_unless_the_query_is_only_stopwords():
    assert marked(highlight_all("the cafeteria of the office", highlight_terms("the cafeteria"))) == ["cafeteria"]
    assert marked(highlight_all("to be or not to be", highlight_terms("to be"))) == ["to", "be", "to", "be"]


def test_html_is_escaped_around_and_inside_marks():
    result = highlight_all("<b>VPN</b> & <script>", highlight_terms("vpn script"))
    assert result.html() == "&lt;b&gt;<mark>VPN</mark>&lt;/b&gt; &amp; &lt;<mark>script</mark>&gt;"


def test_the_snippet_window_holds_the_most_distinct_terms():
    filler = "lorem ipsum dolor sit amet " * 40
    text = f"{filler}cafeteria early. {filler}The cafeteria opens at 8am daily. {filler}"
    result = highlight_snippet(text, highlight_terms("cafeteria 8am"), max_chars=120)
    assert "cafeteria opens at 8am" in result.text
    assert result.text.startswith("…") and result.text.endswith("…")
    assert marked(result) == ["cafeteria", "8am"]
    assert len(result.text) <= 122


def test_snippets_do_not_cut_words_and_collapse_whitespace():
    text = "alpha beta gamma\n\n\ndelta " * 30 + "epsilon target zeta " + "eta theta iota " * 30
    result = highlight_snippet(text, highlight_terms("target"), max_chars=80)
    inner = result.text.strip("…")
    assert "\n" not in result.text and "  " not in result.text
    assert all(word in text.split() for word in inner.split())
    assert marked(result) == ["target"]


def test_without_a_match_the_snippet_is_the_start_of_the_text():
    text = "The robot fleet controller schedules charging. " * 20
    result = highlight_snippet(text, highlight_terms("teleportation"), max_chars=60)
    assert result.spans == () and result.text.startswith("The robot fleet") and result.text.endswith("…")


def test_short_texts_are_shown_whole():
    result = highlight_snippet("VPN 设置", highlight_terms("设置"))
    assert result.text == "VPN 设置" and marked(result) == ["设置"]


def test_zero_width_and_combining_characters_stay_inside_the_mark():
    result = highlight_all("data\u200bbase and 数\u200b据库", highlight_terms("database 数据库"))
    assert marked(result) == ["data\u200bbase", "数\u200b据库"]


def test_a_lone_bigram_of_a_longer_cjk_query_word_is_not_marked():
    text = "パスフレーズとパスワード。期限が切れた場合"
    assert marked(highlight_all(text, highlight_terms("パスワードを忘れた"))) == ["パスワード"]
    # Query words of two characters are single bigrams, so they are marked wherever they occur.
    assert marked(highlight_all("报销期限为30天，逾期不报销", highlight_terms("报销 期限"))) == ["报销期限", "报销"]


def test_cjk_snippets_are_shorter_than_latin_ones():
    chinese = "公司的差旅政策适用于所有员工。" * 30 + "报销期限为三十天。" + "其他规定请参阅手册。" * 30
    english = "The travel policy applies to all staff. " * 30 + "Claims are due in thirty days. " + "x " * 100
    cjk = highlight_snippet(chinese, highlight_terms("报销"))
    latin = highlight_snippet(english, highlight_terms("claims"))
    assert "<mark>报销</mark>期限为三十天" in cjk.html() and len(cjk.text) <= 125
    assert "<mark>Claims</mark> are due" in latin.html() and len(latin.text) > 200


def test_a_word_is_marked_exactly_when_the_analyzer_gives_it_a_query_term():
    from kbsearch.text.analysis import index_terms

    text = "Policies and policy; VPNs, vpn’s gateways: Gateway-E4 routers’ café CAFE naïve 2026 ｔｅｓｔ tests"
    query = highlight_terms("policy vpn gateway cafe test 2026")
    expected = [word for word in text.replace(";", " ").replace(",", " ").replace(":", " ").replace("-", " ").split()
                if set(index_terms(word)) & query.terms]
    assert marked(highlight_all(text, query)) == [w.rstrip("’") for w in expected]
