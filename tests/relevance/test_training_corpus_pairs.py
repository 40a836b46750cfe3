"""Pairs from the corpus: a section's heading path as the query, its text (without the heading
line) as the positive; capped per document and in total."""
from kbsearch.ingest.chunking import context_line_split
from kbsearch.relevance.training_data.passages import PassageStore


def test_heading_paths_pair_with_their_sections(kb, doc, build):
    _, rows = build(corpus_per_document=5, negatives_per_pair=1)
    by_query = {row["query"]: row for row in rows}
    install = by_query["VPN setup > Install the client"]
    assert install["positive"] == "Download the VPN client from the portal and install it."
    assert install["origin"] == "corpus" and install["query_time"] is None
    assert install["document_id"] == doc("vpn").pk and install["source"] == "share" and install["language"] == "en"
    assert "VPN setup > Connect from home" in by_query
    assert all(row["query"] not in row["positive"] for row in rows)
    assert all(len(row["negatives"]) == 1 for row in rows)


def test_caps_per_document_and_in_total(kb, doc, build):
    _, per_document = build(corpus_per_document=1)
    vpn_rows = [row for row in per_document if row["document_id"] == doc("vpn").pk]
    assert [row["query"] for row in vpn_rows] == ["VPN setup > Install the client"]
    snapshot, capped = build(corpus_per_document=5, corpus_total=3)
    assert len(capped) == 3
    assert snapshot.summary["dropped"]["corpus pairs over the total cap"] == 3
    _, again = build(corpus_per_document=5, corpus_total=3)
    assert [row["chunk_id"] for row in again] == [row["chunk_id"] for row in capped]  # same choice every time


def test_short_sections_make_no_pair(kb, build):
    snapshot, rows = build(corpus_per_document=5, corpus_min_chars=60)
    assert all(len(row["positive"]) >= 60 for row in rows)
    assert snapshot.summary["dropped"]["corpus section too short"] >= 1


def test_stored_chunks_split_back_into_context_and_body(kb):
    for passage in PassageStore().iter_all():
        assert passage.context and passage.body
        assert passage.text == f"{passage.context}\n{passage.body}"


def test_context_line_split_forms():
    assert context_line_split("Guide > Setup\nbody", title="Guide", heading_path=["Setup"]) == ("Guide > Setup", "body")
    assert context_line_split("Setup\nbody", title="Setup", heading_path=["Setup"]) == ("Setup", "body")
    assert context_line_split("B > C\nbody", title="T", heading_path=["A", "B", "C"]) == ("B > C", "body")
    assert context_line_split("Very long head…\nbody", title="T", heading_path=["Very long heading"]) == (
        "Very long head…", "body")
    assert context_line_split("Guide > Setup", title="Guide", heading_path=["Setup"]) == ("Guide > Setup", "")
    assert context_line_split("just text\nmore", title="Guide", heading_path=["Setup"]) == ("", "just text\nmore")


def test_a_heading_many_documents_share_pairs_only_a_few_times(kb, add_source, build):
    add_source("teams", {
        "_access.yaml": "principals: [public]\n",
        **{f"team{n}.md": f"# Overview\n\nTeam {n} looks after the printers on floor {n} and their supplies.\n"
           for n in range(5)},
    })
    snapshot, rows = build(corpus_per_document=5, corpus_per_query=2)
    assert len([row for row in rows if row["query"] == "Overview"]) == 2
    assert snapshot.summary["dropped"]["heading shared by more sections than the per-query cap"] == 3
