"""The BM25 analyzer: CJK bigrams, normalization, word splitting, stopwords, odd Unicode."""

import random

import pytest

from kbsearch.text.analysis import (
    ENGLISH_STOPWORDS,
    MAX_TERM_LENGTH,
    analyzed_text,
    index_terms,
    query_terms,
)


def matches(query: str, document: str) -> bool:
    """Every query term occurs in the document: what a conjunctive BM25 match needs."""
    return set(query_terms(query)) <= set(index_terms(document))


@pytest.mark.parametrize(
    ("query", "document"),
    [
        ("数据", "数据库"),
        ("数据", "大数据"),
        ("数据库", "我们的数据库备份策略"),
        ("テスト", "テストケース"),
        ("テスト", "単体テストを書く"),
        ("회사", "회사에서"),
        ("회사", "우리 회사는"),
        ("東京", "東京の駅"),
        ("vpn", "使用VPN连接"),
        ("连接", "使用VPN连接"),
    ],
)
def test_cjk_words_match_inside_longer_words(query, document):
    assert matches(query, document)


def test_cjk_runs_become_overlapping_bigrams():
    assert index_terms("数据库") == ["数据", "据库"]
    assert index_terms("テストケース") == ["テス", "スト", "トケ", "ケー", "ース"]
    assert index_terms("회사에서") == ["회사", "사에", "에서"]


def test_isolated_cjk_character_is_a_unigram():
    assert index_terms("第3章") == ["第", "3", "章"]
    assert index_terms("水") == ["水"]


def test_mixed_script_text_splits_at_script_changes():
    assert index_terms("使用VPN连接") == ["使用", "vpn", "连接"]
    assert index_terms("2024年度予算") == ["2024", "年度", "度予", "予算"]


def test_unrelated_cjk_words_do_not_match():
    assert not matches("数据", "数字化转型")
    assert not matches("회사", "회의실")


@pytest.mark.parametrize(
    ("variant", "canonical"),
    [
        ("ＶＰＮ", "VPN"),
        ("ｖｐｎ", "vpn"),
        ("ﾃｽﾄ", "テスト"),  # half-width katakana
        ("Ｗｉ－Ｆｉ", "wi-fi"),
        ("STRASSE", "straße"),  # casefold
        ("Ｈ２Ｏ", "h2o"),
        ("ﬁle", "file"),  # ligature
    ],
)
def test_compatibility_forms_and_case_fold_to_the_same_terms(variant, canonical):
    assert index_terms(variant) == index_terms(canonical)


def test_words_split_on_non_alphanumerics_and_keep_digits():
    terms = index_terms("COVID-19 vaccine_policy v2.1")
    assert terms == ["covid", "19", "vaccine", "policy", "v2", "1"]


def test_apostrophes_join_words_and_drop_english_possessive():
    assert index_terms("Don't use Google's API") == ["dont", "use", "google", "api"]
    assert index_terms("O’Reilly users'") == ["oreilly", "user"]
    assert matches("google", "Google's policy")


@pytest.mark.parametrize(
    ("query", "document"),
    [("password", "Reset your passwords"), ("policies", "The leave policy"), ("laptop", "Laptops")],
)
def test_english_plurals_match_singulars(query, document):
    assert matches(query, document)


def test_plural_folding_leaves_non_plurals_and_short_words_alone():
    assert index_terms("status class gas yes v2s") == ["status", "class", "gas", "yes", "v2s"]
    assert index_terms("policies") == index_terms("policy")


def test_stopwords_are_removed_even_when_plural_folding_changes_them():
    assert query_terms("this policy") == ["policy"]


def test_cyrillic_and_greek_are_words():
    assert index_terms("Привет, Мир! αβγ") == ["привет", "мир", "αβγ"]


def test_index_terms_keep_repetition_and_stopwords():
    assert index_terms("The VPN and the VPN") == ["the", "vpn", "and", "the", "vpn"]


def test_query_terms_drop_stopwords_and_duplicates_in_order():
    assert query_terms("What is the VPN policy for the VPN?") == ["what", "vpn", "policy"]


def test_query_of_only_stopwords_keeps_them():
    assert query_terms("to be or not to be") == ["to", "be", "or", "not"]


def test_stopwords_are_the_weaviate_english_preset():
    assert {"the", "a", "and", "is", "of", "with"} <= ENGLISH_STOPWORDS
    assert len(ENGLISH_STOPWORDS) == 33


def test_cjk_query_terms_are_not_stopword_filtered():
    assert query_terms("数据数据库") == ["数据", "据数", "据库"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("data\u200bbase", ["database"]),  # zero-width space inside a word
        ("soft\u00adware", ["software"]),  # soft hyphen
        ("\ufeffhello", ["hello"]),  # byte-order mark
        ("h\u0338e\u0338l\u0338l\u0338o\u0338", ["hello"]),  # combining overlay ("zalgo")
        ("cafe\u0301", ["café"]),  # combining accent composes under NFKC
        ("İstanbul", ["istanbul"]),  # casefold leaves a combining dot, which is dropped
        ("👨\u200d👩\u200d👧 family 🚀", ["family"]),  # emoji ZWJ sequence
        ("bad\ud800surrogate\udc80x", ["bad", "surrogate", "x"]),  # lone surrogates separate
        ("ctrl\x00\x07chars\x1b[0m", ["ctrl", "char", "0m"]),
        ("\ue000private\U000f0000use", ["private", "use"]),
        ("ｶﾞｷﾞ", ["ガギ"]),
    ],
)
def test_odd_unicode_is_cleaned_not_garbage(text, expected):
    assert index_terms(text) == expected


@pytest.mark.parametrize("text", ["", "   \n\t ", "!!!---???", "😀🚀", "\u200b\u200d\ufe0f", "'''"])
def test_texts_without_terms_give_empty_lists(text):
    assert index_terms(text) == []
    assert query_terms(text) == []


def test_random_unicode_never_crashes_and_yields_clean_terms():
    rng = random.Random(7)
    alphabet_ranges = [
        (0x20, 0x7F), (0xA0, 0x2FF), (0x300, 0x36F), (0x400, 0x4FF), (0x2000, 0x206F),
        (0x3000, 0x30FF), (0x4E00, 0x4F00), (0xAC00, 0xAD00), (0xD800, 0xDFFF), (0xFE00, 0xFFFF),
        (0x1F300, 0x1F6FF), (0x20000, 0x20100), (0xE0000, 0xE007F),
    ]
    for _ in range(300):
        text = "".join(
            chr(rng.randint(*rng.choice(alphabet_ranges))) for _ in range(rng.randint(0, 80))
        )
        terms = index_terms(text)
        for term in terms:
            assert term and term.isalnum(), (text, term)
            assert len(term) <= MAX_TERM_LENGTH
        assert analyzed_text(terms).split() == terms


def test_very_long_words_are_cut_into_bounded_terms():
    terms = index_terms("x" * (MAX_TERM_LENGTH * 2 + 5))
    assert [len(t) for t in terms] == [MAX_TERM_LENGTH, MAX_TERM_LENGTH, 5]


def test_analyzed_text_joins_with_single_spaces():
    terms = index_terms("使用VPN连接 and more")
    assert analyzed_text(terms) == "使用 vpn 连接 and more"
    assert analyzed_text([]) == ""


@pytest.mark.parametrize("bad", [["ok", "two words"], ["", "x"], ["tab\tbed"], ["line\n"]])
def test_analyzed_text_rejects_terms_that_would_not_survive_whitespace_tokenization(bad):
    with pytest.raises(ValueError, match="empty or contains whitespace"):
        analyzed_text(bad)


@pytest.mark.parametrize("function", [index_terms, query_terms])
def test_non_string_input_is_rejected(function):
    with pytest.raises(TypeError, match="expected str"):
        function(None)
