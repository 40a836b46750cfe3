"""embeddings.training without Django: reading pairs, the weighted losses, budgets and LoRA."""
import json
import sys

import numpy as np
import pytest
import torch
from safetensors import safe_open
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

from embeddings.encoder import Encoder
from embeddings.lora import LoraUnavailable
from embeddings.training import (
    TRAINING_INFO_FILE,
    TrainingDataError,
    TrainingPair,
    TrainingParams,
    read_pairs,
    train_model,
)
from embeddings.training_losses import (
    WeightedCachedMultipleNegativesRankingLoss,
    WeightedMultipleNegativesRankingLoss,
    weighted_info_nce,
)
from tests.relevance.training_fixtures import train_rows

PAIRS = [TrainingPair(query=row["query"], positive=row["positive"], negatives=tuple(row["negatives"]),
                      weight=row["weight"], document_id=row["document_id"]) for row in train_rows()]


def write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_read_pairs_keeps_weights_and_drops_a_negative_equal_to_the_positive(tmp_path):
    rows = [
        {"query": "q1", "positive": "p1", "negatives": ["n1", "p1", "n1"], "weight": 2.5, "document_id": 7},
        {"query": "q2", "positive": "p2"},
    ]
    pairs = read_pairs(write_lines(tmp_path / "train.jsonl", [json.dumps(row) for row in rows] + [""]))
    assert pairs == [TrainingPair("q1", "p1", ("n1",), 2.5, 7), TrainingPair("q2", "p2", (), 1.0, None)]


@pytest.mark.parametrize(("line", "message"), [
    ("{not json", "not JSON"),
    ('["a list"]', "expected a JSON object"),
    ('{"query": "q", "positive": ""}', "'positive' must be a non-empty string"),
    ('{"query": "q", "positive": "p", "negatives": "n"}', "'negatives' must be a list"),
    ('{"query": "q", "positive": "p", "weight": -1}', "'weight' must be a positive number"),
    ('{"query": "q", "positive": "p", "weight": true}', "'weight' must be a positive number"),
])
def test_a_malformed_line_fails_the_file_naming_the_line(tmp_path, line, message):
    path = write_lines(tmp_path / "train.jsonl", ['{"query": "q", "positive": "p"}', line])
    with pytest.raises(TrainingDataError, match=f"train.jsonl:2: {message}"):
        read_pairs(path)


def test_empty_or_missing_training_files_are_refused(tmp_path):
    with pytest.raises(TrainingDataError, match="holds no training pairs"):
        read_pairs(write_lines(tmp_path / "train.jsonl", ["", " "]))
    with pytest.raises(TrainingDataError, match="missing training file"):
        read_pairs(tmp_path / "absent.jsonl")


def test_params_are_checked_and_read_back_from_their_stored_form():
    with pytest.raises(ValueError, match="batch_size must be >= 2"):
        TrainingParams(batch_size=1)
    with pytest.raises(ValueError, match="loss must be one of"):
        TrainingParams(loss="triplet")
    with pytest.raises(ValueError, match="scale must be > 0"):
        TrainingParams(scale=0)
    with pytest.raises(ValueError, match="unknown training parameters: \\['epoch'\\]"):
        TrainingParams.from_dict({"epoch": 2})
    params = TrainingParams(max_steps=5, lora=None)
    assert TrainingParams.from_dict(params.as_dict()) == params
    assert TrainingParams.from_dict({"lora": True}).lora.rank == 16


def test_weighted_losses_equal_the_library_loss_with_equal_weights_and_follow_the_weights(tiny_model_dir):
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(0)
    queries, positives, negatives = (torch.nn.functional.normalize(torch.randn(6, 8), dim=1) for _ in range(3))
    columns = [queries, positives, negatives]
    expected = MultipleNegativesRankingLoss(None).compute_loss_from_embeddings(columns, None)
    weighted = WeightedMultipleNegativesRankingLoss(None)
    assert torch.allclose(weighted.compute_loss_from_embeddings(columns, torch.ones(6)), expected)
    assert torch.allclose(weighted.compute_loss_from_embeddings(columns, None), expected)

    scores = queries @ torch.cat([positives, negatives]).T * 20.0
    per_row = torch.logsumexp(scores, dim=1) - scores.diagonal()
    weights = torch.tensor([3.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    assert torch.allclose(weighted.compute_loss_from_embeddings(columns, weights), (per_row * weights).sum() / 8)
    assert torch.allclose(weighted_info_nce(scores, weights), (per_row * weights).sum() / 8)

    # The cached loss scores mini-batches of 4 rows: the same weighted mean over the whole batch.
    cached = WeightedCachedMultipleNegativesRankingLoss(SentenceTransformer(str(tiny_model_dir)), mini_batch_size=4)
    reps = [list(column.split(4)) for column in columns]
    assert torch.allclose(cached.calculate_loss(reps, weights), (per_row * weights).sum() / 8)


def test_training_changes_the_weights_and_saves_a_loadable_model(tmp_path, tiny_model_dir):
    progress = []
    result = train_model(
        base_model=tiny_model_dir, pairs=PAIRS, output_dir=tmp_path / "out",
        params=TrainingParams(epochs=2, batch_size=8, learning_rate=1e-3, negatives_per_pair=1),
        on_progress=lambda step, total, loss: progress.append((step, total, loss)),
        provenance={"snapshot": 3},
    )
    assert (result.steps, result.total_steps, result.stop_reason) == (8, 8, "completed")
    assert [step for step, _total, loss in progress if loss is None] == list(range(1, 9))
    assert [step for step, _ in result.losses] == list(range(1, 9)) and result.negatives_per_pair == 1
    info = json.loads((tmp_path / "out" / TRAINING_INFO_FILE).read_text())
    assert (info["snapshot"], info["steps"], info["pairs"]) == (3, 8, len(PAIRS))
    before, after = Encoder(str(tiny_model_dir)), Encoder(str(tmp_path / "out"))
    assert before.index_metadata.model_version != after.index_metadata.model_version
    assert after.max_seq_length == before.max_seq_length  # the serving length, not the training one
    texts = ["how does vpn work"]
    assert not np.allclose(before.encode_queries(texts), after.encode_queries(texts), atol=1e-4)
    # The token embedding table stays as it was (frozen by default); the encoder layers moved.
    old, new = weights(tiny_model_dir), weights(tmp_path / "out")
    assert torch.equal(old["embeddings.word_embeddings.weight"], new["embeddings.word_embeddings.weight"])
    assert not torch.equal(old["encoder.layer.0.attention.self.query.weight"],
                           new["encoder.layer.0.attention.self.query.weight"])


def weights(folder) -> dict:
    with safe_open(str(folder / "model.safetensors"), framework="pt") as handle:
        return {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118 (not a dict)


def test_the_step_and_time_budgets_stop_training_and_keep_the_model(tmp_path, tiny_model_dir):
    stepped = train_model(base_model=tiny_model_dir, pairs=PAIRS, output_dir=tmp_path / "steps",
                          params=TrainingParams(epochs=5, batch_size=8, max_steps=3))
    assert (stepped.steps, stepped.total_steps, stepped.stop_reason) == (3, 3, "step budget")
    timed = train_model(base_model=tiny_model_dir, pairs=PAIRS, output_dir=tmp_path / "time",
                        params=TrainingParams(epochs=5, batch_size=8, max_seconds=1e-6))
    assert (timed.steps, timed.total_steps, timed.stop_reason) == (1, 20, "time budget")
    assert (tmp_path / "time" / "model.safetensors").is_file()


def test_bfloat16_autocast_trains_float32_weights(tmp_path, tiny_model_dir):
    result = train_model(base_model=tiny_model_dir, pairs=PAIRS, output_dir=tmp_path / "bf16",
                         params=TrainingParams(batch_size=8, max_steps=2, bf16=True, learning_rate=1e-3))
    assert result.steps == 2 and all(tensor.dtype == torch.float32 for tensor in weights(result.output_dir).values())


def test_lora_adapters_are_merged_into_a_plain_model(tmp_path, tiny_model_dir):
    result = train_model(base_model=tiny_model_dir, pairs=PAIRS, output_dir=tmp_path / "lora",
                         params=TrainingParams.from_dict({"epochs": 1, "batch_size": 8, "lora": {"rank": 4},
                                                          "learning_rate": 1e-3}))
    with safe_open(str(result.output_dir / "model.safetensors"), framework="pt") as handle:
        names = list(handle.keys())
    assert names and not [name for name in names if "lora" in name or "base_layer" in name]
    assert not (result.output_dir / "adapter_config.json").exists()
    trained = Encoder(str(result.output_dir))
    assert trained.index_metadata.model_version != Encoder(str(tiny_model_dir)).index_metadata.model_version


def test_lora_without_peft_is_a_clear_error(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "peft", None)  # what an installation without peft sees
    with pytest.raises(LoraUnavailable, match="optional peft package"):
        train_model(base_model=tiny_model_dir, pairs=PAIRS, output_dir=tmp_path / "lora",
                    params=TrainingParams(lora=TrainingParams.from_dict({"lora": True}).lora))
    assert not (tmp_path / "lora").exists()


def test_training_needs_two_pairs(tmp_path, tiny_model_dir):
    with pytest.raises(TrainingDataError, match="at least 2 pairs"):
        train_model(base_model=tiny_model_dir, pairs=PAIRS[:1], output_dir=tmp_path / "out")
