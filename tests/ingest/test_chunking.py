"""Structure-aware chunking: token bounds (simple and trained model tokenizers), heading paths,
overlap, CJK and mixed text, huge inputs (the parsers are in test_parsers.py)."""

import random
import re

import pytest
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from kbsearch.ingest.chunking import TextChunk, chunk_blocks
from kbsearch.ingest.parsers import Block, blocks_from_html, blocks_from_markdown
from tests.ingest.samples import HTML, MARKDOWN

CJK = "\u3040-\u30ff\u3400-\u9fff\uac00-\ud7a3"
_SIMPLE_TOKEN_RE = re.compile(f"[{CJK}]|[^\\W{CJK}]+|[^\\w\\s]")


def simple_count(text: str) -> int:
    """One token per CJK character, Latin word or punctuation mark."""
    return len(_SIMPLE_TOKEN_RE.findall(text))


class CountingCounter:
    def __init__(self, count):
        self.count, self.calls, self.chars = count, 0, 0

    def __call__(self, text: str) -> int:
        self.calls += 1
        self.chars += len(text)
        return self.count(text)


# --- random mixed-script documents ------------------------------------------------------------

EN_WORDS = (
    "the employee benefits policy covers parental leave salary review vpn network server "
    "database backup restore install configure laptop password reset quarterly report"
).split()
ZH_CHARS = "数据库大数据使用连接网络配置服务器员工福利政策请假工资安装备份恢复密码"
JA_CHARS = "テストケースのデータベースを使用して接続する東京駅社員休暇パスワード"
KO_WORDS = "회사에서 일해요 데이터베이스 연결 네트워크 설정 직원 휴가 정책 비밀번호".split()


def random_sentence(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.35:
        words = " ".join(rng.choice(EN_WORDS) for _ in range(rng.randint(1, 30)))
        return words.capitalize() + rng.choice([".", "!", "?", ""])
    if kind < 0.55:
        end = rng.choice(["。", "！", "，", ""])
        return "".join(rng.choices(ZH_CHARS, k=rng.randint(1, 60))) + end
    if kind < 0.7:
        return "「" + "".join(rng.choices(JA_CHARS, k=rng.randint(1, 60))) + rng.choice(["。」", "」"])
    if kind < 0.8:
        return " ".join(rng.choices(KO_WORDS, k=rng.randint(1, 15))) + "."
    if kind < 0.9:
        english = rng.choice(EN_WORDS).upper()
        return "".join(rng.choices(ZH_CHARS, k=8)) + english + "".join(rng.choices(ZH_CHARS, k=8))
    return "".join(rng.choices(ZH_CHARS + JA_CHARS, k=rng.randint(200, 1500)))  # no punctuation


def random_document(rng: random.Random) -> list[Block]:
    blocks = []
    for index in range(rng.randint(0, 20)):
        roll = rng.random()
        if roll < 0.2:
            heading = f"{rng.choice(EN_WORDS)} {index}"
            blocks.append(Block("heading", heading, rng.randint(1, 4)))
        elif roll < 0.3:
            lines = (
                " ".join(rng.choices(EN_WORDS, k=rng.randint(1, 12)))
                for _ in range(rng.randint(1, 30))
            )
            blocks.append(Block("code", "\n".join(f"x = '{line}'" for line in lines)))
        elif roll < 0.35:
            blocks.append(Block("paragraph", "  \n "))
        else:
            joiner = rng.choice([" ", "", "\n"])
            text = joiner.join(random_sentence(rng) for _ in range(rng.randint(1, 10)))
            blocks.append(Block(rng.choice(["paragraph", "list", "table"]), text))
    return blocks


def training_corpus() -> list[str]:
    rng = random.Random(0)
    return [random_sentence(rng)[:300] for _ in range(400)]


def model_count(tokenizer: Tokenizer):
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids)


@pytest.fixture(scope="module")
def unigram_count():
    """An XLM-R-like Unigram tokenizer (NFKC, Metaspace) trained offline on mixed-script text."""
    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=400, unk_token="<unk>", special_tokens=["<unk>"], show_progress=False
    )
    tokenizer.train_from_iterator(training_corpus(), trainer=trainer)
    return model_count(tokenizer)


@pytest.fixture(scope="module")
def wordpiece_count():
    """A BERT-like WordPiece tokenizer (CJK characters split apart) trained offline."""
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(handle_chinese_chars=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=400, special_tokens=["[UNK]"], show_progress=False
    )
    tokenizer.train_from_iterator(training_corpus(), trainer=trainer)
    return model_count(tokenizer)


def chunk_paragraph(text: str, count, **options) -> list[TextChunk]:
    return chunk_blocks([Block("paragraph", text)], count_tokens=count, **options)


def no_space(text: str) -> str:
    return re.sub(r"\s+", "", text)


def body_of(chunk: TextChunk, title: str) -> str:
    has_context = bool(chunk.heading_path or title)
    if not has_context:
        return chunk.text
    return chunk.text.split("\n", 1)[1] if "\n" in chunk.text else ""


def assert_valid_chunking(blocks, count, max_tokens, overlap_tokens, title=""):
    """Bounds, counts, ordinals, determinism, and full ordered coverage of the body text."""
    options = dict(max_tokens=max_tokens, overlap_tokens=overlap_tokens, title=title)
    chunks = chunk_blocks(blocks, count_tokens=count, **options)
    assert chunks == chunk_blocks(blocks, count_tokens=count, **options)
    body_text = no_space("".join(b.text for b in blocks if b.kind != "heading"))
    start, end = -1, 0
    for ordinal, chunk in enumerate(chunks):
        assert chunk.ordinal == ordinal
        assert chunk.token_count == count(chunk.text) <= max_tokens
        context = chunk.text.split("\n", 1)[0] if (chunk.heading_path or title) else ""
        parts = ([title] if title else []) + chunk.heading_path
        suffixes = {" > ".join(parts[i:]) for i in range(len(parts))}
        shortened = context.removesuffix("…")
        if context:
            assert context in suffixes or any(p.startswith(shortened) for p in parts), context
        body = no_space(body_of(chunk, title))
        if not body:
            continue  # a heading without text of its own
        # Each body continues the text where the previous one ended (or overlaps it), in order.
        found = body_text.rfind(body, start + 1, end + len(body))
        assert found >= 0, f"chunk {ordinal} is not the continuation of the text: {body[:60]!r}"
        assert overlap_tokens or found == end, "overlap although overlap_tokens == 0"
        start, end = found, found + len(body)
    assert end == len(body_text), "text after the last chunk was lost"
    return chunks


@pytest.mark.parametrize("counter", ["simple", "unigram", "wordpiece"])
def test_random_mixed_script_documents_respect_the_bound_and_lose_nothing(counter, request):
    count = simple_count if counter == "simple" else request.getfixturevalue(f"{counter}_count")
    rng = random.Random(f"chunking-{counter}")
    for _ in range(25 if counter == "simple" else 12):
        max_tokens = rng.choice([16, 24, 48, 128, 256])
        overlap = rng.randint(0, max_tokens // 4)
        title = rng.choice(["", "Employee Handbook 员工手册"])
        assert_valid_chunking(random_document(rng), count, max_tokens, overlap, title)


def test_empty_and_whitespace_only_input_give_no_chunks():
    assert chunk_blocks([], count_tokens=simple_count) == []
    assert chunk_blocks([Block("paragraph", " \n\t ")], count_tokens=simple_count, title="T") == []
    assert chunk_blocks(blocks_from_markdown(""), count_tokens=simple_count) == []


HANDBOOK = """# Handbook

Welcome to the company.

## Benefits

Overview of benefits.

### Parental leave

Parents get sixteen weeks of paid leave.

### Dental

Dental care is covered.

## Contact

Write to hr@example.com.
"""


def test_heading_paths_and_context_lines():
    blocks = blocks_from_markdown(HANDBOOK)
    chunks = chunk_blocks(blocks, count_tokens=simple_count, title="Handbook")
    assert [(c.heading_path, c.text) for c in chunks] == [
        (["Handbook"], "Handbook\nWelcome to the company."),
        (["Handbook", "Benefits"], "Handbook > Benefits\nOverview of benefits."),
        (
            ["Handbook", "Benefits", "Parental leave"],
            "Handbook > Benefits > Parental leave\nParents get sixteen weeks of paid leave.",
        ),
        (
            ["Handbook", "Benefits", "Dental"],
            "Handbook > Benefits > Dental\nDental care is covered.",
        ),
        (["Handbook", "Contact"], "Handbook > Contact\nWrite to hr@example.com."),
    ]


def test_title_prefixes_the_context_line_when_it_is_not_the_first_heading():
    blocks = [Block("heading", "Benefits", 2), Block("paragraph", "Sixteen weeks.")]
    [chunk] = chunk_blocks(blocks, count_tokens=simple_count, title="HR  Wiki")
    assert chunk.text == "HR Wiki > Benefits\nSixteen weeks."
    assert chunk.heading_path == ["Benefits"]


def test_heading_without_text_still_yields_a_chunk_but_a_parent_heading_does_not():
    blocks = blocks_from_markdown("# A\n\n## B\n\ntext b\n\n## C\n\n# D\n")
    chunks = chunk_blocks(blocks, count_tokens=simple_count)
    assert [(c.heading_path, c.text) for c in chunks] == [
        (["A", "B"], "A > B\ntext b"),
        (["A", "C"], "A > C"),
        (["D"], "D"),
    ]


def test_long_heading_path_is_shortened_to_a_quarter_of_the_budget():
    headings = [Block("heading", " ".join(["word"] * 10) + f" {i}", i + 1) for i in range(5)]
    blocks = headings + [Block("paragraph", "Body text.")]
    chunks = chunk_blocks(blocks, count_tokens=simple_count, max_tokens=64, overlap_tokens=8)
    context = chunks[0].text.split("\n")[0]
    assert simple_count(context) <= 16
    assert chunks[0].text.endswith("\nBody text.")
    assert len(chunks[0].heading_path) == 5


def test_small_paragraphs_of_a_section_are_packed_together():
    answers = [Block("paragraph", f"Answer number {i}.") for i in range(5)]
    blocks = [Block("heading", "FAQ", 1)] + answers
    [chunk] = chunk_blocks(blocks, count_tokens=simple_count, max_tokens=64, overlap_tokens=8)
    assert chunk.text == "FAQ\n" + "\n".join(f"Answer number {i}." for i in range(5))


def test_sections_are_never_merged_even_when_small():
    blocks = blocks_from_markdown("# A\n\none\n\n# B\n\ntwo\n")
    chunks = chunk_blocks(blocks, count_tokens=simple_count)
    assert [c.text for c in chunks] == ["A\none", "B\ntwo"]


def english_sentences(n: int) -> list[str]:
    return [f"Sentence {i} talks about topic {i} in some detail." for i in range(n)]


def test_consecutive_chunks_in_a_section_share_trailing_sentences():
    text = " ".join(english_sentences(40))
    chunks = chunk_paragraph(text, simple_count, max_tokens=64, overlap_tokens=16)
    assert len(chunks) > 3
    for previous, following in zip(chunks, chunks[1:]):
        first_sentence = following.text.split(". ")[0] + "."
        assert previous.text.endswith(first_sentence)  # a whole trailing sentence is repeated
        assert simple_count(first_sentence) <= 16


def test_zero_overlap_repeats_nothing():
    text = " ".join(english_sentences(40))
    chunks = chunk_paragraph(text, simple_count, max_tokens=64, overlap_tokens=0)
    assert " ".join(c.text for c in chunks) == text


def test_no_overlap_across_sections():
    long_a = " ".join(english_sentences(20))
    blocks = [Block("heading", "A", 1), Block("paragraph", long_a), Block("heading", "B", 1),
              Block("paragraph", "Only B.")]
    chunks = chunk_blocks(blocks, count_tokens=simple_count, max_tokens=64, overlap_tokens=16)
    assert chunks[-1].text == "B\nOnly B."


def test_chinese_without_spaces_is_cut_at_sentence_ends():
    sentences = [f"第{i}条规定员工每年享有带薪年假和病假。" for i in range(60)]
    chunks = chunk_blocks([Block("paragraph", "".join(sentences))], count_tokens=simple_count,
                          max_tokens=64, overlap_tokens=0)
    assert len(chunks) > 5
    assert all(c.token_count <= 64 for c in chunks)
    assert all(c.text.endswith("。") for c in chunks)
    assert "".join(c.text for c in chunks) == "".join(sentences)  # no spaces were invented


def test_japanese_sentence_ends_include_closing_brackets():
    sentences = [f"社員{i}は「休暇を取ります。」と言った。" for i in range(40)]
    chunks = chunk_blocks([Block("paragraph", "".join(sentences))], count_tokens=simple_count,
                          max_tokens=48, overlap_tokens=0)
    assert all(c.text.endswith(("。", "」")) for c in chunks)


def test_cjk_run_without_punctuation_is_cut_by_characters_with_few_count_calls():
    text = "".join(random.Random(3).choices(ZH_CHARS, k=200_000))
    counter = CountingCounter(simple_count)
    chunks = chunk_paragraph(text, counter, max_tokens=256, overlap_tokens=32)
    assert all(c.token_count <= 256 for c in chunks)
    assert min(c.token_count for c in chunks[:-1]) >= 200  # cuts are near the budget, not timid
    # A handful of calls per chunk, never one per character.
    assert counter.calls < 15 * len(chunks)
    assert counter.chars < 10 * len(text)
    assert_valid_chunking([Block("paragraph", text[:20_000])], simple_count, 256, 32)


def test_cuts_do_not_halve_english_words_inside_cjk_text():
    text = "使用VPNGATEWAY连接服务器配置" * 400
    chunks = chunk_paragraph(text, simple_count, max_tokens=40, overlap_tokens=0)
    for chunk in chunks:
        assert not re.match(r"[A-Z]", chunk.text) or chunk.text.startswith("VPNGATEWAY")
        assert not re.search(r"[A-Z]$", chunk.text) or chunk.text.endswith("VPNGATEWAY")


def test_huge_single_paragraph_stays_bounded_and_linear(unigram_count):
    text = " ".join(random_sentence(random.Random(i)) for i in range(3000))
    counter = CountingCounter(unigram_count)
    chunks = chunk_paragraph(text, counter, max_tokens=128, overlap_tokens=16)
    assert all(c.token_count <= 128 for c in chunks)
    assert counter.chars < 10 * len(text)


def test_invalid_arguments_are_rejected_clearly():
    with pytest.raises(ValueError, match="unknown block kind"):
        Block("sidebar", "x")
    with pytest.raises(TypeError, match="block text must be str"):
        Block("paragraph", None)
    with pytest.raises(ValueError, match="max_tokens"):
        chunk_blocks([Block("paragraph", "x")], count_tokens=simple_count, max_tokens=8)
    with pytest.raises(ValueError, match="overlap_tokens"):
        chunk_paragraph("x", simple_count, max_tokens=64, overlap_tokens=40)
    with pytest.raises(TypeError, match="expected Block"):
        chunk_blocks(["plain string"], count_tokens=simple_count)


def test_parsed_documents_chunk_within_a_model_tokenizer_budget(unigram_count):
    blocks = blocks_from_markdown(MARKDOWN * 30) + blocks_from_html(HTML * 30)
    assert_valid_chunking(blocks, unigram_count, 48, 8, title="Guide")
