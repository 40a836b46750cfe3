"""LoRA adapters for training an encoder (``peft``, optional): which modules they adapt, how they are
added, and how they are folded back into the weights so a trained model saves and loads like any
other (``embeddings.training`` uses them when ``TrainingParams.lora`` is set).

Adapters train a few percent of the weights, which is what makes e5-base and larger trainable on a
CPU; the plain whole-model update stays the default for the bundled e5-small.
"""
from dataclasses import dataclass

# The modules LoRA adapts in BERT/XLM-R encoders (e5 small, base and large): attention and MLP.
LORA_TARGET_MODULES = ("query", "key", "value", "dense")


class LoraUnavailable(RuntimeError):
    """LoRA was asked for but the optional ``peft`` package is not installed."""


@dataclass(frozen=True)
class LoraParams:
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.05


def add_lora(model, lora: LoraParams) -> None:
    """Attach fresh adapters (``lora``) to the attention and MLP modules of a sentence-transformers model."""
    try:
        from peft import LoraConfig
    except ImportError:
        raise LoraUnavailable(
            "LoRA adapters need the optional peft package (pip install peft==0.21.2); "
            "train without LoRA or install it"
        ) from None
    config = LoraConfig(
        r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
        target_modules=list(LORA_TARGET_MODULES), bias="none",
    )
    model.add_adapter(config)


def merge_lora(model) -> None:
    """Fold the adapters into the base weights and drop them, so the saved model is a plain one."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    transformer = model.transformers_model
    for name, module in list(transformer.named_modules()):
        if isinstance(module, BaseTunerLayer):
            module.merge()
            parent_name, _, child = name.rpartition(".")
            parent = transformer.get_submodule(parent_name) if parent_name else transformer
            setattr(parent, child, module.get_base_layer())
    for attribute in ("peft_config", "_hf_peft_config_loaded"):
        if hasattr(transformer, attribute):
            delattr(transformer, attribute)
