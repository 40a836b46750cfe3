"""Script-based language detection for chunks and the query-language filter of hybrid search."""

import pytest

from kbsearch.text.language import ALL_LANGUAGES, detect_language, query_languages


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("How do I reset my VPN password?", "en"),
        ("Résumé des congés payés pour les employés", "en"),  # Latin script is the 'en' family
        ("ＶＰＮ ｓｅｔｕｐ", "en"),  # full-width Latin
        ("如何重置我的密码", "zh"),
        ("使用VPN连接公司网络", "zh"),
        ("数据库的 backup 和 restore 策略说明", "zh"),  # English terms inside Chinese prose
        ("パスワードをリセットする方法", "ja"),
        ("東京本社の会議室を予約する", "ja"),  # kanji-heavy but with kana
        ("テストケース", "ja"),
        ("ﾃｽﾄｹｰｽ", "ja"),  # half-width katakana
        ("회사에서 비밀번호를 재설정하는 방법", "ko"),
        ("大韓民國 헌법 제1조", "ko"),  # Hangul with Hanja
        ("", "und"),
        ("   \n\t", "und"),
        ("2024-01-31 12:00", "und"),
        ("!!! ??? 😀🚀", "und"),
        ("Привет, как дела?", "und"),  # outside the four languages
    ],
)
def test_detect_language(text, expected):
    assert detect_language(text) == expected


def test_english_page_quoting_one_cjk_word_stays_english():
    text = "The Chinese word for database is 数据库, used across the whole documentation set."
    assert detect_language(text) == "en"


def test_chinese_text_with_a_lone_katakana_loanword_stays_chinese():
    text = "我们的产品路线图包括新的数据平台和分析工具，这些工具将在明年上线，" * 3 + "ー"
    assert detect_language(text) == "zh"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("vpn password", {"en"}),
        ("회사 휴가", {"ko"}),
        ("テスト", {"ja"}),
        ("数据库", {"zh", "ja"}),  # kanji-only could be Japanese
        ("東京の駅", {"zh", "ja"}),
        ("VPN 설정", {"en", "ko"}),
        ("使用VPN连接", {"en", "zh", "ja"}),
        ("ＶＰＮ", {"en"}),
        ("Привет", {"und"}),
        ("", set()),
        ("  ", set()),
        ("?!", set()),
        ("🚀", set()),
        ("𠮷野家", {"zh", "ja"}),  # Han beyond the BMP
    ],
)
def test_query_languages(query, expected):
    assert query_languages(query) == frozenset(expected)


def test_digit_only_query_can_match_any_language():
    assert query_languages("2024") == ALL_LANGUAGES
    assert query_languages("2024 预算") == frozenset({"zh", "ja"})


def test_query_languages_contain_the_detected_language_of_the_same_text():
    for text in ["vacation policy", "休假政策", "休暇のポリシー", "휴가 정책"]:
        assert detect_language(text) in query_languages(text)


@pytest.mark.parametrize("function", [detect_language, query_languages])
def test_non_string_input_is_rejected(function):
    with pytest.raises(TypeError, match="expected str"):
        function(b"bytes")
