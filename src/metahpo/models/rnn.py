"""Recurrent text classifiers: the ``lstm`` and ``gru`` families (one implementation, two cells).

Text goes through a deterministic word-level tokenizer fitted on the train split (``WordTokenizer``),
then Embedding -> multi-layer LSTM/GRU -> linear head on the last layer's state after each text's
last token (both directions concatenated when bidirectional; padding never enters the state).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar, Iterable, Optional

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from metahpo.errors import DataError
from metahpo.models.base import FAMILIES, Family, PreparedData, PreparedSplit, require_splits

SPLITS = ("train", "validation", "test")
PAD_ID = 0
UNK_ID = 1
# Fixed rather than searched: the search space is exactly lr, batch_size, layers, hidden.
INTER_LAYER_DROPOUT = 0.2

# A word (letters/digits/underscore, with an optional apostrophe suffix such as "don't") or one
# punctuation character. Applied to lower-cased text, so the tokenizer has no state but its vocabulary.
TOKEN_PATTERN = re.compile(r"\w+(?:'\w+)?|[^\w\s]")


def text_splits(data, info: dict[str, Any], family: str) -> int:
    """Check ``data`` is a canonical text dataset (see docs/ARCHITECTURE.md); return its class count."""
    if info.get("modality") != "text":
        raise DataError(
            f"the {family} family needs a text dataset; {info.get('dataset', 'this dataset')} has "
            f"modality {info.get('modality')!r} (pick a family for that modality in params.yaml tasks)"
        )
    require_splits(data, SPLITS)
    label = data["train"].features["label"]
    if not hasattr(label, "num_classes"):
        raise DataError(f"column 'label' must be a ClassLabel, got {label!r}; re-run the download stage")
    return int(label.num_classes)


def tokenize(text: str | None) -> list[str]:
    return TOKEN_PATTERN.findall((text or "").lower())


class WordTokenizer:
    """Word-level vocabulary: ids 0 = padding, 1 = unknown, then the ``vocab_size`` most frequent
    train tokens (ties broken alphabetically, so the ids do not depend on row order).

    Truncation: each text keeps its first ``max_length`` tokens and the rest are cut off; no example
    is ever dropped. A text with no tokens becomes the single unknown token (length 1), because
    packed sequences need a length of at least 1.
    """

    def __init__(self, words: list[str], max_length: int) -> None:
        self.words = words
        self.max_length = max_length
        self.ids = {word: index + 2 for index, word in enumerate(words)}

    @classmethod
    def fit(cls, texts: Iterable[str | None], vocab_size: int, max_length: int) -> "WordTokenizer":
        counts = Counter(token for text in texts for token in tokenize(text))
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        return cls([word for word, _ in ranked[:vocab_size]], max_length)

    @property
    def table_size(self) -> int:
        """Rows of the embedding table: the words plus padding and unknown."""
        return len(self.words) + 2

    def encode(self, texts: Iterable[str | None]) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Return ``(input_ids [n, max_length], lengths [n], truncated_count)``, padded with 0."""
        rows = []
        truncated = 0
        for text in texts:
            tokens = tokenize(text)
            truncated += len(tokens) > self.max_length
            rows.append([self.ids.get(token, UNK_ID) for token in tokens[: self.max_length]] or [UNK_ID])
        input_ids = torch.full((len(rows), self.max_length), PAD_ID, dtype=torch.long)
        for index, row in enumerate(rows):
            input_ids[index, : len(row)] = torch.tensor(row, dtype=torch.long)
        lengths = torch.tensor([len(row) for row in rows], dtype=torch.long)
        return input_ids, lengths, truncated


class RecurrentOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    vocab_size: int = Field(20000, gt=0, description="most frequent train tokens kept; the rest map to unknown")
    max_length: int = Field(256, gt=0, description="tokens kept per text: the first max_length (never drops a text)")
    embedding_dim: int = Field(128, gt=0)
    bidirectional: bool = False
    vocabulary: Optional[str] = Field(
        None, description="a JSON list of words (a pool member's source vocabulary) used instead of fitting on train"
    )


class RecurrentClassifier(nn.Module):
    def __init__(
        self,
        cell: type[nn.LSTM] | type[nn.GRU],
        table_size: int,
        embedding_dim: int,
        hidden: int,
        layers: int,
        bidirectional: bool,
        num_classes: int,
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(table_size, embedding_dim, padding_idx=PAD_ID)
        self.rnn = cell(
            input_size=embedding_dim,
            hidden_size=hidden,
            num_layers=layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=INTER_LAYER_DROPOUT if layers > 1 else 0.0,  # torch warns on dropout with one layer
        )
        self.head = nn.Linear(hidden * (2 if bidirectional else 1), num_classes)

    def forward(self, input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        embedded = self.embedding(input_ids[:, : int(lengths.max())])
        if not self.rnn.bidirectional:
            # Padding is at the end, so the output at each text's last token equals the packed final
            # state; the padded kernel is 2-4x faster than packed sequences on CPU.
            outputs, _ = self.rnn(embedded)
            last_token = (lengths.to(outputs.device) - 1).view(-1, 1, 1).expand(-1, 1, outputs.shape[2])
            return self.head(outputs.gather(1, last_token).squeeze(1))
        # The backward direction must start at each text's last token, not in the padding: pack.
        packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, state = self.rnn(packed)
        final = state[0] if isinstance(state, tuple) else state  # LSTM returns (h_n, c_n)
        # final: [layers * 2, batch, hidden]; the last layer's two directions are the last two rows.
        return self.head(final[-2:].transpose(0, 1).reshape(final.shape[1], -1))


class RecurrentFamily(Family):
    """Shared by ``lstm`` and ``gru``; the instance's ``cell`` is the only difference."""

    modalities: ClassVar[tuple[str, ...]] = ("text",)
    hyperparameters: ClassVar[tuple[str, ...]] = ("lr", "batch_size", "layers", "hidden")
    Options: ClassVar[type[BaseModel]] = RecurrentOptions

    def __init__(self, name: str, cell: type[nn.LSTM] | type[nn.GRU]) -> None:
        self.name = name
        self.cell = cell

    def prepare(self, data, info: dict[str, Any], options: RecurrentOptions) -> PreparedData:
        num_classes = text_splits(data, info, self.name)
        if options.vocabulary is None:
            tokenizer = WordTokenizer.fit(data["train"]["input"], options.vocab_size, options.max_length)
        else:
            tokenizer = WordTokenizer(json.loads(Path(options.vocabulary).read_text(encoding="utf-8")), options.max_length)
        splits = {}
        truncated = {}
        for split in SPLITS:
            input_ids, lengths, truncated[split] = tokenizer.encode(data[split]["input"])
            labels = torch.tensor(data[split]["label"], dtype=torch.long)
            splits[split] = PreparedSplit({"input_ids": input_ids, "lengths": lengths}, labels)
        return PreparedData(
            **splits,
            num_classes=num_classes,
            info={
                "vocab_size": tokenizer.table_size,
                "words": tokenizer.words,  # what a model pretrained here needs to read other texts
                "max_length": options.max_length,
                "truncated": truncated,  # texts per split that lost tokens beyond max_length
            },
        )

    def build(self, config: dict[str, Any], data: PreparedData, options: RecurrentOptions) -> nn.Module:
        return RecurrentClassifier(
            cell=self.cell,
            table_size=int(data.info["vocab_size"]),
            embedding_dim=options.embedding_dim,
            hidden=int(config["hidden"]),
            layers=int(config["layers"]),
            bidirectional=options.bidirectional,
            num_classes=data.num_classes,
        )


LSTM = FAMILIES.register("lstm", RecurrentFamily("lstm", nn.LSTM))
GRU = FAMILIES.register("gru", RecurrentFamily("gru", nn.GRU))
