"""embeddings.update_fraction: keeping a share of a fine-tuning update, alone and inside training."""
import pytest
import torch
from safetensors import safe_open

from embeddings.training import TrainingPair, TrainingParams, train_model
from embeddings.update_fraction import UpdateFraction, blend_saved_models
from tests.relevance.training_fixtures import train_rows

PAIRS = [TrainingPair(query=row["query"], positive=row["positive"], negatives=tuple(row["negatives"]),
                      weight=row["weight"], document_id=row["document_id"]) for row in train_rows()]

LAYER = "encoder.layer.0.attention.self.query.weight"


class Small(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.table = torch.nn.Embedding(10, 4)
        self.table.weight.requires_grad_(False)
        self.dense = torch.nn.Linear(4, 4)
        self.head = torch.nn.Linear(4, 2)


def test_a_fraction_of_the_update_is_kept_and_frozen_weights_are_not_copied():
    torch.manual_seed(0)
    module = Small()
    original = {name: tensor.detach().clone() for name, tensor in module.state_dict().items()}
    keep = UpdateFraction.remember(module, 0.25)
    assert sorted(keep.original) == ["dense.bias", "dense.weight", "head.bias", "head.weight"]
    with torch.no_grad():
        module.dense.weight.add_(1.0)
        module.dense.bias.mul_(3.0)
    assert keep.apply(module) == 2  # the head did not move
    assert torch.allclose(module.dense.weight, original["dense.weight"] + 0.25)
    assert torch.allclose(module.dense.bias, original["dense.bias"] * (1 + 0.25 * 2))
    assert torch.equal(module.head.weight, original["head.weight"])
    assert torch.equal(module.table.weight, original["table.weight"])


def test_the_whole_update_copies_nothing_and_bad_fractions_or_renamed_weights_are_refused():
    module = Small()
    whole = UpdateFraction.remember(module, 1.0)
    assert whole.original == {} and whole.apply(module) == 0
    for fraction in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match="update fraction must be in"):
            UpdateFraction.remember(module, fraction)
    keep = UpdateFraction.remember(module, 0.5)
    module.renamed = module.dense
    del module.dense
    with pytest.raises(RuntimeError, match="lacks parameters it had before training"):
        keep.apply(module)


def query_weight(folder) -> torch.Tensor:
    with safe_open(str(folder / "model.safetensors"), framework="pt") as handle:
        return handle.get_tensor(LAYER)


@pytest.mark.parametrize("lora", [None, {"rank": 4}], ids=["whole model", "lora"])
def test_training_with_half_the_update_lands_halfway(tmp_path, tiny_model_dir, lora):
    # The same seed and data train the same steps; only what is kept of them differs.
    base = {"max_steps": 2, "batch_size": 8, "learning_rate": 1e-3, "lora": lora, "update_fraction": 1.0}
    full = train_model(base_model=tiny_model_dir, pairs=PAIRS, output_dir=tmp_path / "full",
                       params=TrainingParams.from_dict(base))
    half = train_model(base_model=tiny_model_dir, pairs=PAIRS, output_dir=tmp_path / "half",
                       params=TrainingParams.from_dict({**base, "update_fraction": 0.5}))
    before, after, halfway = query_weight(tiny_model_dir), query_weight(full.output_dir), query_weight(half.output_dir)
    assert not torch.allclose(before, after, atol=1e-5)
    assert torch.allclose(halfway, before + 0.5 * (after - before), atol=1e-5)
    # Blending the saved models afterwards gives the same weights as keeping half while training.
    blended = blend_saved_models(original_dir=tiny_model_dir, trained_dir=full.output_dir, fraction=0.5,
                                 output_dir=tmp_path / "blended")
    assert torch.allclose(query_weight(blended), halfway, atol=1e-6)
    with pytest.raises(ValueError, match="update_fraction must be in"):
        TrainingParams(update_fraction=0)
    assert TrainingParams().update_fraction == 0.5  # the default keeps half (docs/relevance.md, run 5)
