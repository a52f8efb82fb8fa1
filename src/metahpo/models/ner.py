"""Token classification (NER) families: ``bilstm_crf`` (from scratch) and ``bert_ner`` (fine-tuned).

Both read the canonical token_classification dataset (docs/ARCHITECTURE.md: ``tokens``, ``tags``
with IOB2 ``label_names``) and share how a split is scored:

- ``labels`` is a padded ``[N, L]`` tensor, -100 where nothing is learnt (padding, and for BERT
  every sub-token but a word's first);
- ``predictions`` gives, per batch, a CPU tensor ``[B, W]`` of predicted tag ids, one column per
  word of the sentence in order, -100 for a word that has no prediction;
- ``score`` turns them into tag names and compares them with the FULL gold sequence of every
  sentence (``extra["gold_tags"]``): a word without a prediction (cut by ``max_length``, or for BERT
  a word the tokenizer turns into no sub-token at all) counts as predicted ``O``. Truncation thus
  costs recall on long sentences instead of silently shrinking the test set, and no sentence is
  ever dropped. Metrics: ``metahpo.metrics.entity_metrics`` (strict IOB2), primary metric ``f1``.
"""

from __future__ import annotations

import copy
import functools
from collections import Counter
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from metahpo.errors import DataError, MetahpoError
from metahpo.metrics import entity_metrics
from metahpo.models.base import FAMILIES, Family, PreparedData, PreparedSplit, require_splits
from metahpo.models.bert import BertFamily, BertOptions, LogitsOnly, check_max_length, load_pretrained, reset_head
from metahpo.models.rnn import PAD_ID, SPLITS, UNK_ID

IGNORE = -100  # torch's cross_entropy ignore_index, and "no prediction" in predicted tag ids
OUTSIDE = "O"


# --- shared: the dataset contract and scoring ---------------------------------------------------


def token_splits(data, info: dict[str, Any], family: str) -> list[str]:
    """Check ``data`` is a canonical token_classification dataset; return its IOB2 tag names."""
    if info.get("task_type") != "token_classification":
        raise DataError(
            f"the {family} family needs a token_classification dataset; {info.get('dataset', 'this dataset')} "
            f"has task_type {info.get('task_type', 'classification')!r} (pick a family for it in params.yaml tasks)"
        )
    require_splits(data, SPLITS)
    columns = data["train"].features
    tag_feature = getattr(columns.get("tags"), "feature", None)
    if "tokens" not in columns or not hasattr(tag_feature, "names"):
        raise DataError(
            f"token_classification needs columns 'tokens' and 'tags' (a sequence of ClassLabel), "
            f"got {dict(columns)!r}; re-run the download stage"
        )
    names = list(tag_feature.names)
    if OUTSIDE not in names:
        raise DataError(f"tag names {names} lack the IOB2 outside tag {OUTSIDE!r}")
    return names


def padded(rows: list[list[int]], width: int, fill: int, dtype: torch.dtype = torch.long) -> torch.Tensor:
    """``[len(rows), width]`` tensor of the rows, each cut to ``width`` and right-padded with ``fill``."""
    table = torch.full((len(rows), width), fill, dtype=dtype)
    for index, row in enumerate(rows):
        row = row[:width]
        if row:
            table[index, : len(row)] = torch.tensor(row, dtype=dtype)
    return table


class TaggingFamily(Family):
    """What both NER families share: task type, metric, split scoring."""

    task_type: ClassVar[str] = "token_classification"
    modalities: ClassVar[tuple[str, ...]] = ("text",)
    primary_metric: ClassVar[str] = "f1"

    @staticmethod
    def scoring_extra(split_data, label_names: list[str], kept_words: list[int]) -> dict[str, Any]:
        """The split's non-batched scoring data: gold tag names and words kept per sentence."""
        return {
            "gold_tags": [[label_names[tag] for tag in tags] for tags in split_data["tags"]],
            "label_names": label_names,
            "kept_words": kept_words,
        }

    def score(self, split: PreparedSplit, predictions: list[torch.Tensor]) -> dict[str, float]:
        names = split.extra["label_names"]
        gold = split.extra["gold_tags"]
        rows = (row for batch in predictions for row in batch.tolist())
        predicted = []
        for gold_tags, row in zip(gold, rows, strict=True):
            tags = [names[tag] if tag != IGNORE else OUTSIDE for tag in row[: len(gold_tags)]]
            predicted.append(tags + [OUTSIDE] * (len(gold_tags) - len(tags)))  # words cut: "O"
        return entity_metrics(gold, predicted)


# --- bilstm_crf ---------------------------------------------------------------------------------


class BiLstmCrfOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    vocab_size: int = Field(20000, gt=0, description="most frequent train words kept; the rest map to unknown")
    lowercase: bool = Field(True, description="lower-case words before the word vocabulary (chars keep case)")
    max_length: int = Field(
        128, gt=0, description="words per sentence fed to the model; the rest are predicted 'O' when scoring"
    )
    word_dim: int = Field(100, gt=0, description="word embedding size (trained from scratch)")
    char_cnn: bool = Field(True, description="add a character CNN feature per word (spelling, capitals)")
    char_dim: int = Field(30, gt=0, description="character embedding size")
    char_filters: int = Field(50, gt=0, description="character CNN filters (kernel 3, max-pooled over the word)")
    max_word_length: int = Field(16, gt=0, description="characters per word the character CNN sees")


def ranked_vocabulary(counts: Counter, size: int) -> dict[str, int]:
    """The ``size`` most frequent items -> ids from 2 (0 padding, 1 unknown); ties alphabetical, so
    the ids do not depend on row order."""
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:size]
    return {item: index + 2 for index, (item, _) in enumerate(ranked)}


class BiLstmCrfTagger(nn.Module):
    """[word embedding ; char CNN] -> dropout -> BiLSTM -> dropout -> linear emissions; ``crf`` holds
    the tag transitions. ``forward`` returns the emissions ``[B, T, tags]``, T the batch's longest."""

    def __init__(
        self,
        word_table: int,
        word_dim: int,
        char_table: int,  # 0: no character CNN
        char_dim: int,
        char_filters: int,
        hidden: int,
        dropout: float,
        num_tags: int,
    ) -> None:
        super().__init__()
        from torchcrf import CRF

        self.word_embedding = nn.Embedding(word_table, word_dim, padding_idx=PAD_ID)
        self.char_embedding = nn.Embedding(char_table, char_dim, padding_idx=PAD_ID) if char_table else None
        self.char_conv = nn.Conv1d(char_dim, char_filters, kernel_size=3, padding=1) if char_table else None
        self.dropout = nn.Dropout(dropout)
        features = word_dim + (char_filters if char_table else 0)
        self.lstm = nn.LSTM(features, hidden, batch_first=True, bidirectional=True)
        self.emissions = nn.Linear(2 * hidden, num_tags)
        self.crf = CRF(num_tags, batch_first=True)

    def forward(self, word_ids: torch.Tensor, lengths: torch.Tensor, char_ids: torch.Tensor | None = None):
        width = int(lengths.max())
        features = self.word_embedding(word_ids[:, :width])
        if self.char_conv is not None:
            chars = char_ids[:, :width].long()  # stored as int16
            batch, words, letters = chars.shape
            embedded = self.char_embedding(chars.reshape(batch * words, letters)).transpose(1, 2)
            spelling = self.char_conv(embedded).amax(dim=2).reshape(batch, words, -1)
            features = torch.cat([features, spelling], dim=2)
        # Packed: the backward direction must start at each sentence's last word, not in the padding.
        packed = pack_padded_sequence(self.dropout(features), lengths.cpu(), batch_first=True, enforce_sorted=False)
        states, _ = self.lstm(packed)
        states, _ = pad_packed_sequence(states, batch_first=True, total_length=width)
        return self.emissions(self.dropout(states))


class CrfOutputs(NamedTuple):
    """A batch's emissions with what Viterbi decoding needs; decoded only in ``predictions``, so
    training steps do not pay for it."""

    emissions: torch.Tensor
    mask: torch.Tensor
    crf: nn.Module


class BiLstmCrfFamily(TaggingFamily):
    """Hyperparameters lr, batch_size, epochs, dropout (as bert_ner, so the two families share
    axes), and hidden (LSTM units per direction: the capacity knob of a from-scratch model) in place
    of warmup_steps, which Adam on randomly initialised weights does not need. Optimiser: Adam."""

    name: ClassVar[str] = "bilstm_crf"
    hyperparameters: ClassVar[tuple[str, ...]] = ("lr", "batch_size", "epochs", "dropout", "hidden")
    Options: ClassVar[type[BaseModel]] = BiLstmCrfOptions

    def prepare(self, data, info: dict[str, Any], options: BiLstmCrfOptions) -> PreparedData:
        """Vocabularies from the train split (words, lower-cased if ``lowercase``; characters as
        written). Each sentence keeps its first ``max_length`` words for the model (an empty sentence
        becomes one unknown word tagged O, as the CRF needs a length of at least 1); scoring still
        covers every gold word (module docstring)."""
        label_names = token_splits(data, info, self.name)
        outside = label_names.index(OUTSIDE)

        def words_of(tokens: list[str]) -> list[str]:
            return [token.lower() for token in tokens] if options.lowercase else list(tokens)

        train_tokens = data["train"]["tokens"]
        word_counts = Counter(word for tokens in train_tokens for word in words_of(tokens))
        word_ids = ranked_vocabulary(word_counts, options.vocab_size)
        char_ids = ranked_vocabulary(Counter(c for tokens in train_tokens for t in tokens for c in t), 2**15 - 3)

        splits, truncated = {}, {}
        for split in SPLITS:
            sentences = [tokens[: options.max_length] for tokens in data[split]["tokens"]]
            tags = [row[: options.max_length] or [outside] for row in data[split]["tags"]]
            kept_words = [len(tokens) for tokens in sentences]
            truncated[split] = sum(len(tokens) > options.max_length for tokens in data[split]["tokens"])
            width = max([1, *kept_words])
            inputs = {
                "word_ids": padded(
                    [[word_ids.get(w, UNK_ID) for w in words_of(tokens)] or [UNK_ID] for tokens in sentences],
                    width,
                    PAD_ID,
                ),
                "lengths": torch.tensor([max(1, count) for count in kept_words], dtype=torch.long),
            }
            if options.char_cnn:
                # int16 (the char vocabulary is capped below 2**15) keeps [N, L, chars] small
                chars = np.full((len(sentences), width, options.max_word_length), PAD_ID, dtype=np.int16)
                for row, tokens in enumerate(sentences):
                    for column, token in enumerate(tokens):
                        spelled = [char_ids.get(c, UNK_ID) for c in token[: options.max_word_length]]
                        chars[row, column, : len(spelled)] = spelled
                inputs["char_ids"] = torch.from_numpy(chars)
            splits[split] = PreparedSplit(
                inputs,
                padded(tags, width, IGNORE),
                self.scoring_extra(data[split], label_names, kept_words),
            )
        return PreparedData(
            **splits,
            num_classes=len(label_names),
            info={
                "label_names": label_names,
                "vocab_size": len(word_ids) + 2,
                "char_vocab_size": len(char_ids) + 2 if options.char_cnn else 0,
                "max_length": options.max_length,
                "truncated": truncated,  # sentences per split with words beyond max_length
            },
        )

    def build(self, config: dict[str, Any], data: PreparedData, options: BiLstmCrfOptions) -> nn.Module:
        return BiLstmCrfTagger(
            word_table=int(data.info["vocab_size"]),
            word_dim=options.word_dim,
            char_table=int(data.info["char_vocab_size"]),
            char_dim=options.char_dim,
            char_filters=options.char_filters,
            hidden=int(config["hidden"]),
            dropout=float(config["dropout"]),
            num_tags=data.num_classes,
        )

    def step(self, model: nn.Module, inputs: dict[str, torch.Tensor], labels: torch.Tensor):
        """Loss: the CRF's negative log-likelihood of the gold tag sequence, mean over sentences."""
        emissions = model(**inputs).float()  # the CRF's log-sum-exp wants float32 under bf16 autocast
        width = emissions.shape[1]
        mask = torch.arange(width, device=emissions.device) < inputs["lengths"].unsqueeze(1)
        tags = labels[:, :width].clamp(min=0)  # -100 only past each length, where the mask is off
        crf = model.crf
        return -crf(emissions, tags, mask=mask, reduction="mean"), CrfOutputs(emissions, mask, crf)

    def predictions(self, outputs: CrfOutputs) -> torch.Tensor:
        """Viterbi decoding: the best tag sequence of each sentence under emissions + transitions."""
        paths = outputs.crf.decode(outputs.emissions, mask=outputs.mask)
        return padded(paths, outputs.emissions.shape[1], IGNORE)


# --- bert_ner -----------------------------------------------------------------------------------

# Config keys of the encoder's hidden dropout, by architecture family (BERT/RoBERTa/ELECTRA; DistilBERT).
HIDDEN_DROPOUT_KEYS = ("hidden_dropout_prob", "dropout")


@functools.lru_cache(maxsize=1)  # one task's weights at a time, like bert.load_pretrained
def load_token_classifier(checkpoint: str, label_names: tuple[str, ...]):
    """``(tokenizer, AutoModelForTokenClassification)`` with the checkpoint's encoder weights.

    The loading (local folder, bundled MiniLM, Hub id with a fast offline failure) is
    ``bert.load_pretrained``'s; its encoder weights move under a token-classification head. Every
    encoder weight must arrive (a sequence-classification pooler has no place here and is left out).
    """
    from transformers import AutoModelForTokenClassification

    tokenizer, sequence_model = load_pretrained(checkpoint, len(label_names))
    config = copy.deepcopy(sequence_model.config)
    config.id2label = dict(enumerate(label_names))
    config.label2id = {name: index for index, name in enumerate(label_names)}
    model = AutoModelForTokenClassification.from_config(config)
    missing, _ = model.base_model.load_state_dict(sequence_model.base_model.state_dict(), strict=False)
    if missing:
        raise MetahpoError(f"checkpoint {checkpoint!r}: no weights for encoder parameters {missing[:5]} ...")
    return tokenizer, model


class WordLogits(NamedTuple):
    logits: torch.Tensor  # [B, T, tags] over sub-tokens
    word_positions: torch.Tensor  # [B, W]: each word's first sub-token, -1 when it has none


class BertNerFamily(TaggingFamily, BertFamily):
    """Fine-tunes the ``bert`` family's checkpoints (same options, loading and AdamW) per token.

    Hyperparameters lr, batch_size, epochs, dropout, warmup_steps. ``dropout`` is written into the
    model config's hidden dropout (``hidden_dropout_prob``; ``dropout`` for DistilBERT) before the
    trial's model is built, with ``classifier_dropout`` unset so the token head uses it too: it
    applies to the embeddings, every layer's attention-output and feed-forward output, and the head.
    Attention-probability dropout stays at the checkpoint's value.
    """

    name: ClassVar[str] = "bert_ner"
    hyperparameters: ClassVar[tuple[str, ...]] = ("lr", "batch_size", "epochs", "dropout", "warmup_steps")
    Options: ClassVar[type[BaseModel]] = BertOptions

    def prepare(self, data, info: dict[str, Any], options: BertOptions) -> PreparedData:
        """Word-piece tokenization of the pre-split words (``is_split_into_words=True``).

        Alignment: the first sub-token of each word carries the word's tag; its other sub-tokens,
        [CLS], [SEP] and padding carry -100 (no loss). ``word_positions`` (an input, so it is
        batched with the rows) holds each word's first sub-token, read back by ``predictions``: one
        tag per word. Truncation: each sentence keeps its first ``max_length`` sub-tokens counting
        [CLS]/[SEP]; words beyond have no sub-token (position -1) and are scored as predicted "O".
        No sentence is ever dropped.
        """
        label_names = token_splits(data, info, self.name)
        tokenizer, model = load_token_classifier(options.checkpoint, tuple(label_names))
        check_max_length(self.name, options, model.config)
        tokenizer.padding_side = "right"  # LogitsOnly trims trailing padding
        splits, truncated = {}, {}
        for split in SPLITS:
            # lists: the tokenizer rejects datasets' lazy Column objects
            sentences, sentence_tags = list(data[split]["tokens"]), list(data[split]["tags"])
            encoded = tokenizer(
                sentences,
                is_split_into_words=True,
                truncation=True,
                max_length=options.max_length,
                padding="longest",
                return_tensors="pt",
            )
            labels = torch.full_like(encoded["input_ids"], IGNORE)
            positions = [[-1] * len(words) for words in sentences]
            for row, tags in enumerate(sentence_tags):
                for position, word in enumerate(encoded.word_ids(row)):
                    if word is not None and positions[row][word] < 0:  # the word's first sub-token
                        positions[row][word] = position
                        labels[row, position] = tags[word]
            # a word is kept when it has a sub-token: all words up to the last one that has one
            kept_words = [max((w + 1 for w, p in enumerate(row) if p >= 0), default=0) for row in positions]
            truncated[split] = sum(kept < len(words) for kept, words in zip(kept_words, sentences))
            width = max((len(words) for words in sentences), default=0)
            inputs = {**encoded, "word_positions": padded(positions, max(1, width), -1)}
            splits[split] = PreparedSplit(inputs, labels, self.scoring_extra(data[split], label_names, kept_words))
        return PreparedData(
            **splits,
            num_classes=len(label_names),
            info={
                "label_names": label_names,
                "checkpoint": options.checkpoint,
                "max_length": options.max_length,
                "truncated": truncated,  # sentences per split with words cut by max_length
            },
        )

    def build(self, config: dict[str, Any], data: PreparedData, options: BertOptions) -> nn.Module:
        from transformers import AutoModelForTokenClassification

        _, pretrained = load_token_classifier(options.checkpoint, tuple(data.info["label_names"]))
        model_config = copy.deepcopy(pretrained.config)
        key = next((key for key in HIDDEN_DROPOUT_KEYS if hasattr(model_config, key)), None)
        if key is None:
            raise MetahpoError(
                f"checkpoint {options.checkpoint!r} ({model_config.model_type}) has no hidden dropout "
                f"setting ({' or '.join(HIDDEN_DROPOUT_KEYS)}) for the dropout hyperparameter"
            )
        setattr(model_config, key, float(config["dropout"]))
        if hasattr(model_config, "classifier_dropout"):
            model_config.classifier_dropout = None  # the head falls back to the hidden dropout
        model = AutoModelForTokenClassification.from_config(model_config)
        model.load_state_dict(pretrained.state_dict())  # the cached weights stay untouched by training
        reset_head(model)
        model.train()
        return LogitsOnly(model)

    def step(self, model: nn.Module, inputs: dict[str, torch.Tensor], labels: torch.Tensor):
        """Loss: cross-entropy over the tagged (first) sub-tokens of the batch, mean over them."""
        inputs = dict(inputs)
        word_positions = inputs.pop("word_positions")
        logits = model(**inputs)  # [B, T', tags], T' = the batch's longest sentence in sub-tokens
        labels = labels[:, : logits.shape[1]]
        total = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE, reduction="sum")
        # a batch whose sentences have no words (or only cut ones) has nothing to learn: loss 0, not NaN
        return total / (labels != IGNORE).sum().clamp(min=1), WordLogits(logits, word_positions)

    def predictions(self, outputs: WordLogits) -> torch.Tensor:
        """The arg-max tag at each word's first sub-token; -100 for words without one."""
        best = outputs.logits.argmax(dim=2)
        positions = outputs.word_positions
        at_words = best.gather(1, positions.clamp(min=0))
        return torch.where(positions >= 0, at_words, IGNORE).cpu()


BILSTM_CRF = FAMILIES.register("bilstm_crf", BiLstmCrfFamily())
BERT_NER = FAMILIES.register("bert_ner", BertNerFamily())
