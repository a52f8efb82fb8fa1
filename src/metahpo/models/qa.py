"""Extractive question answering (SQuAD v2 style): the ``bidaf`` and ``bert_qa`` families.

Both predict, for every *window* of a context, a start and an end logit per position, where
position 0 means "no answer": BiDAF prepends a learned no-answer position to the context, BERT uses
its [CLS] token. Labels are ``[windows, 2]`` (start, end) positions, ``(0, 0)`` = no answer in this
window. The split's ``extra`` carries what scoring needs:

- ``window_example``: int64 array [windows], the example each window comes from;
- ``offsets``: int32 array [windows, positions, 2], the character span of each position in the
  example's context, -1 where the position is not context (no-answer slot, question, specials, pad);
- ``ids``, ``contexts``, ``answers`` (gold texts, [] = unanswerable) per example;
- ``max_answer_length``: the longest span (in positions) decoding considers.

Scoring (``decode_answers``): for each example, the best span over all its windows (start <= end,
both inside the context, at most ``max_answer_length`` positions, score = start + end logit) against
the smallest no-answer score (start + end logit of position 0) over its windows; the answer is ""
when the no-answer score is greater (threshold 0, ties go to the span, as transformers' run_qa).
Predictions are then scored with ``squad_v2_metrics`` against the gold answers, never against the
(possibly truncated) training labels.
"""

from __future__ import annotations

import copy
import functools
from collections import Counter
from typing import Any, ClassVar, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from metahpo.errors import DataError, MetahpoError
from metahpo.metrics import squad_v2_metrics
from metahpo.models.base import FAMILIES, Family, PreparedData, PreparedSplit, require_splits
from metahpo.models.bert import BertOptions, check_max_length, load_pretrained, reset_head
from metahpo.models.rnn import PAD_ID, SPLITS, TOKEN_PATTERN, UNK_ID, WordTokenizer

NO_ANSWER = 0  # position of the no-answer slot in every window's logits
NOT_CONTEXT = -1  # offsets of positions that are not context
QA_COLUMNS = ("id", "question", "context", "answers")


# ---------------------------------------------------------------------------------------------
# shared by both families


def qa_examples(data, info: dict[str, Any], family: str) -> None:
    """Check ``data`` is a canonical extractive_qa dataset (docs/ARCHITECTURE.md)."""
    if info.get("task_type") != "extractive_qa" or info.get("modality", "text") != "text":
        raise DataError(
            f"the {family} family needs an extractive_qa text dataset; {info.get('dataset', 'this dataset')} "
            f"has task_type {info.get('task_type')!r} (pick a family for that task type in params.yaml tasks)"
        )
    require_splits(data, SPLITS)
    absent = [column for column in QA_COLUMNS if column not in data["train"].column_names]
    if absent:
        raise DataError(f"extractive_qa dataset lacks column(s) {absent}; re-run the download stage")


def answer_spans(answers: dict[str, Sequence]) -> list[tuple[int, int]]:
    """Character spans ``[start, end)`` of an example's gold answers."""
    return [(int(start), int(start) + len(text)) for text, start in zip(answers["text"], answers["answer_start"])]


def decode_answers(
    start_logits: torch.Tensor,
    end_logits: torch.Tensor,
    offsets: np.ndarray,
    window_example: np.ndarray,
    contexts: Sequence[str],
    max_answer_length: int,
) -> list[str]:
    """Answer text per example (module docstring: best span over windows vs. smallest null score)."""
    start_logits, end_logits = start_logits.float(), end_logits.float()
    is_context = torch.from_numpy(offsets[:, :, 0] >= 0)
    positions = is_context.shape[1]
    null_scores = start_logits[:, NO_ANSWER] + end_logits[:, NO_ANSWER]
    best_scores = torch.full((len(offsets),), -torch.inf)
    best_starts = torch.zeros(len(offsets), dtype=torch.long)
    best_lengths = torch.zeros(len(offsets), dtype=torch.long)
    # One vectorised pass per span length: context positions are contiguous in a window, so a span
    # whose two ends are context lies wholly inside it.
    for length in range(min(max_answer_length, positions)):
        valid = is_context[:, : positions - length] & is_context[:, length:]
        scores = (start_logits[:, : positions - length] + end_logits[:, length:]).masked_fill(~valid, -torch.inf)
        score, start = scores.max(dim=1)
        better = score > best_scores
        best_scores = torch.where(better, score, best_scores)
        best_starts = torch.where(better, start, best_starts)
        best_lengths = torch.where(better, torch.full_like(start, length), best_lengths)

    best: dict[int, tuple[float, int, int]] = {}  # example -> (span score, window, start)
    null: dict[int, float] = {}
    for window, example in enumerate(window_example.tolist()):
        null[example] = min(null.get(example, torch.inf), float(null_scores[window]))
        score = float(best_scores[window])
        if score > best.get(example, (-torch.inf,))[0]:
            best[example] = (score, window, int(best_starts[window]))
    answers = []
    for example, context in enumerate(contexts):
        if example not in best or null[example] > best[example][0]:
            answers.append("")
            continue
        _, window, start = best[example]
        end = start + int(best_lengths[window])
        answers.append(context[int(offsets[window, start, 0]) : int(offsets[window, end, 1])])
    return answers


def pad_positions(logits: torch.Tensor, positions: int) -> torch.Tensor:
    """Right-pad a batch's logits (trimmed to its longest window) back to the split's width."""
    return F.pad(logits.float(), (0, positions - logits.shape[1]), value=-torch.inf)


class QAFamily(Family):
    """Loss, predictions and scoring shared by the extractive QA families."""

    task_type: ClassVar[str] = "extractive_qa"
    modalities: ClassVar[tuple[str, ...]] = ("text",)
    primary_metric: ClassVar[str] = "f1"

    def step(self, model: nn.Module, inputs: dict[str, torch.Tensor], labels: torch.Tensor):
        start_logits, end_logits = model(**inputs)
        loss = (F.cross_entropy(start_logits.float(), labels[:, 0]) + F.cross_entropy(end_logits.float(), labels[:, 1])) / 2
        return loss, (start_logits, end_logits)

    def predictions(self, outputs: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        start_logits, end_logits = outputs
        return start_logits.float().cpu(), end_logits.float().cpu()

    def score(self, split: PreparedSplit, predictions: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
        extra = split.extra
        positions = extra["offsets"].shape[1]
        start_logits = torch.cat([pad_positions(start, positions) for start, _ in predictions])
        end_logits = torch.cat([pad_positions(end, positions) for _, end in predictions])
        answers = decode_answers(
            start_logits, end_logits, extra["offsets"], extra["window_example"], extra["contexts"], extra["max_answer_length"]
        )
        return squad_v2_metrics(dict(zip(extra["ids"], answers)), dict(zip(extra["ids"], extra["answers"])))


def scoring_extra(split, window_example: Sequence[int], offsets: np.ndarray, max_answer_length: int) -> dict[str, Any]:
    return {
        "window_example": np.asarray(window_example, dtype=np.int64),
        "offsets": offsets,
        "ids": list(split["id"]),
        "contexts": list(split["context"]),
        "answers": [list(answers["text"]) for answers in split["answers"]],
        "max_answer_length": max_answer_length,
    }


# ---------------------------------------------------------------------------------------------
# bidaf

CHAR_KERNEL = 5  # character CNN filter width (the paper's)
MAX_WORD_CHARS = 16  # characters kept per word for the character CNN
CHAR_TABLE = 256  # character ids fit a uint8: 0 = padding, 1 = unknown, then the most frequent train chars


class BidafOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_context_tokens: int = Field(
        400, gt=0, description="context words kept (the first ones); an answer beyond them is a no-answer label"
    )
    max_question_tokens: int = Field(40, gt=0, description="question words kept (the first ones)")
    word_dim: int = Field(100, gt=0, description="word embedding size (also the character CNN's filter count)")
    char_dim: int = Field(16, gt=0, description="character embedding size")
    hidden: int = Field(100, gt=0, description="LSTM hidden size per direction (the paper's d)")
    vocab_size: int = Field(30000, gt=0, description="most frequent train question+context words kept")
    max_answer_length: int = Field(30, gt=0, description="longest answer span (words) decoding considers")


class WordEncoder:
    """Word ids (vocabulary of ``WordTokenizer``) and character ids of a text's words, with offsets."""

    def __init__(self, words: WordTokenizer, chars: list[str]) -> None:
        self.words = words
        self.char_ids = {char: index + 2 for index, char in enumerate(chars)}

    @classmethod
    def fit(cls, texts: list[str], vocab_size: int) -> "WordEncoder":
        counts = Counter(match.group() for text in texts for match in TOKEN_PATTERN.finditer(text))
        chars = Counter()
        for word, count in counts.items():
            for char in word[:MAX_WORD_CHARS]:
                chars[char] += count
        ranked = sorted(chars.items(), key=lambda item: (-item[1], item[0]))[: CHAR_TABLE - 2]
        return cls(WordTokenizer.fit(texts, vocab_size, max_length=1), [char for char, _ in ranked])

    def encode(self, texts: Sequence[str], max_tokens: int):
        """``(word_ids int32 [n, max_tokens], char_ids uint8 [n, max_tokens, MAX_WORD_CHARS],
        lengths [n], offsets int32 [n, max_tokens, 2] (-1 past the end), truncated_count)``.
        A text with no words becomes one unknown word without offsets (packing needs length >= 1)."""
        word_ids = torch.full((len(texts), max_tokens), PAD_ID, dtype=torch.int32)
        char_ids = torch.zeros((len(texts), max_tokens, MAX_WORD_CHARS), dtype=torch.uint8)
        offsets = np.full((len(texts), max_tokens, 2), NOT_CONTEXT, dtype=np.int32)
        lengths = torch.ones(len(texts), dtype=torch.long)
        truncated = 0
        for row, text in enumerate(texts):
            matches = list(TOKEN_PATTERN.finditer(text or ""))
            truncated += len(matches) > max_tokens
            matches = matches[:max_tokens]
            if not matches:
                word_ids[row, 0] = UNK_ID
                continue
            lengths[row] = len(matches)
            word_ids[row, : len(matches)] = torch.tensor(
                [self.words.ids.get(match.group().lower(), UNK_ID) for match in matches], dtype=torch.int32
            )
            for position, match in enumerate(matches):
                word = match.group()[:MAX_WORD_CHARS]
                char_ids[row, position, : len(word)] = torch.tensor(
                    [self.char_ids.get(char, UNK_ID) for char in word], dtype=torch.uint8
                )
                offsets[row, position] = match.span()
        return word_ids, char_ids, lengths, offsets, truncated


def word_span_labels(offsets: np.ndarray, lengths: torch.Tensor, answers: Sequence[dict]) -> torch.Tensor:
    """(start, end) label per example in no-answer-first positions: word index + 1 of the first gold
    answer's first and last word; (0, 0) when unanswerable or when the answer reaches past the kept words."""
    labels = torch.zeros((len(answers), 2), dtype=torch.long)
    for row, example_answers in enumerate(answers):
        spans = answer_spans(example_answers)
        if not spans:
            continue
        answer_start, answer_end = spans[0]
        words = offsets[row, : int(lengths[row])]
        touching = np.flatnonzero((words[:, 0] >= 0) & (words[:, 1] > answer_start) & (words[:, 0] < answer_end))
        cut_off = len(words) == offsets.shape[1] and words[-1, 1] < answer_end  # past max_context_tokens
        if len(touching) == 0 or cut_off:
            continue
        labels[row] = torch.tensor([touching[0] + 1, touching[-1] + 1])
    return labels


class CharCNN(nn.Module):
    """Character embeddings -> 1-D convolution -> max over the word's characters (Kim 2014)."""

    def __init__(self, char_dim: int, filters: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(CHAR_TABLE, char_dim, padding_idx=PAD_ID)
        self.conv = nn.Conv1d(char_dim, filters, CHAR_KERNEL, padding=CHAR_KERNEL // 2)

    def forward(self, char_ids: torch.Tensor) -> torch.Tensor:
        batch, words, chars = char_ids.shape
        embedded = self.embedding(char_ids.long().view(batch * words, chars)).transpose(1, 2)
        return F.relu(self.conv(embedded)).max(dim=2).values.view(batch, words, -1)


class Highway(nn.Module):
    """Two highway layers (Srivastava et al. 2015): x <- g * relu(W x) + (1 - g) * x."""

    def __init__(self, dim: int, layers: int = 2) -> None:
        super().__init__()
        self.transforms = nn.ModuleList(nn.Linear(dim, dim) for _ in range(layers))
        self.gates = nn.ModuleList(nn.Linear(dim, dim) for _ in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for transform, gate in zip(self.transforms, self.gates):
            g = torch.sigmoid(gate(x))
            x = g * F.relu(transform(x)) + (1 - g) * x
        return x


class PackedBiLSTM(nn.Module):
    """Bidirectional LSTM over right-padded sequences; packing keeps the backward pass out of the padding."""

    def __init__(self, input_size: int, hidden: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.lstm = nn.LSTM(
            input_size, hidden, num_layers=layers, batch_first=True, bidirectional=True, dropout=dropout if layers > 1 else 0.0
        )

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        output, _ = self.lstm(packed)
        return pad_packed_sequence(output, batch_first=True, total_length=x.shape[1])[0]


class BiDAF(nn.Module):
    """BiDAF (Seo et al. 2017) with a learned no-answer position prepended to the context.

    Layers: word + character-CNN embeddings -> 2 highway layers -> shared contextual BiLSTM (H for
    the context, U for the question) -> attention flow: similarity S_tj = w^T [h_t; u_j; h_t * u_j],
    context-to-query ũ_t = sum_j softmax_j(S_t:) u_j, query-to-context h̃ = sum_t softmax_t(max_j S_tj) h_t,
    G = [h; ũ; h * ũ; h * h̃] -> modelling 2-layer BiLSTM (M) -> start = w1^T [G; M],
    end = w2^T [G; BiLSTM(M)]. The no-answer vector enters the context after the highway layers, so it
    is contextualised and attends to the question like any word; its logits are position 0.
    """

    def __init__(self, table_size: int, word_dim: int, char_dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        embedding_dim = 2 * word_dim  # word embedding + as many character CNN filters
        self.word_embedding = nn.Embedding(table_size, word_dim, padding_idx=PAD_ID)
        self.char_cnn = CharCNN(char_dim, word_dim)
        self.highway = Highway(embedding_dim)
        self.no_answer = nn.Parameter(torch.randn(embedding_dim) * 0.1)
        self.dropout = nn.Dropout(dropout)
        self.contextual = PackedBiLSTM(embedding_dim, hidden, 1, 0.0)
        self.similarity_context = nn.Linear(2 * hidden, 1)
        self.similarity_question = nn.Linear(2 * hidden, 1, bias=False)
        self.similarity_product = nn.Parameter(torch.randn(2 * hidden) / (2 * hidden) ** 0.5)
        self.modelling = PackedBiLSTM(8 * hidden, hidden, 2, dropout)
        self.end_lstm = PackedBiLSTM(2 * hidden, hidden, 1, 0.0)
        self.start_output = nn.Linear(10 * hidden, 1)
        self.end_output = nn.Linear(10 * hidden, 1)

    def embed(self, word_ids: torch.Tensor, char_ids: torch.Tensor) -> torch.Tensor:
        embedded = torch.cat([self.word_embedding(word_ids.long()), self.char_cnn(char_ids)], dim=2)
        return self.highway(self.dropout(embedded))

    def forward(
        self,
        context_ids: torch.Tensor,
        context_chars: torch.Tensor,
        context_lengths: torch.Tensor,
        question_ids: torch.Tensor,
        question_chars: torch.Tensor,
        question_lengths: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # trim the batch to its longest texts: the rest is padding everywhere
        context_width, question_width = int(context_lengths.max()), int(question_lengths.max())
        context = self.embed(context_ids[:, :context_width], context_chars[:, :context_width])
        question = self.embed(question_ids[:, :question_width], question_chars[:, :question_width])
        context = torch.cat([self.no_answer.expand(context.shape[0], 1, -1), context], dim=1)
        context_lengths = context_lengths + 1
        positions = torch.arange(context.shape[1], device=context.device)
        context_mask = positions.unsqueeze(0) < context_lengths.unsqueeze(1)  # [B, T]
        question_mask = torch.arange(question.shape[1], device=context.device).unsqueeze(0) < question_lengths.unsqueeze(1)

        h = self.contextual(self.dropout(context), context_lengths)  # [B, T, 2d]
        u = self.contextual(self.dropout(question), question_lengths)  # [B, J, 2d]
        similarity = (
            self.similarity_context(h)  # [B, T, 1]
            + self.similarity_question(u).transpose(1, 2)  # [B, 1, J]
            + (h * self.similarity_product) @ u.transpose(1, 2)  # [B, T, J]
        )
        similarity = similarity.masked_fill(~question_mask.unsqueeze(1), -1e30)
        attended_question = similarity.softmax(dim=2) @ u  # ũ: [B, T, 2d]
        context_weights = similarity.max(dim=2).values.masked_fill(~context_mask, -1e30).softmax(dim=1)
        attended_context = (context_weights.unsqueeze(1) @ h).expand_as(h)  # h̃ tiled: [B, T, 2d]
        g = torch.cat([h, attended_question, h * attended_question, h * attended_context], dim=2)  # [B, T, 8d]

        m = self.modelling(self.dropout(g), context_lengths)
        m_end = self.end_lstm(self.dropout(m), context_lengths)
        start = self.start_output(self.dropout(torch.cat([g, m], dim=2))).squeeze(2)
        end = self.end_output(self.dropout(torch.cat([g, m_end], dim=2))).squeeze(2)
        start = start.float().masked_fill(~context_mask, -1e30)
        end = end.float().masked_fill(~context_mask, -1e30)
        return start, end


class BidafFamily(QAFamily):
    """``bidaf``: BiDAF trained from scratch.

    No pretrained word vectors: machines here are offline and GloVe is not installed, so the word
    embeddings (vocabulary: the ``vocab_size`` most frequent words of the train questions and
    contexts) are learned from scratch like the rest; the character CNN covers rare words.
    Optimiser: Adam, not the paper's Adadelta (lr 0.5), because the searched learning rates
    (0.001-0.01) are Adam's scale, and Adam converges in far fewer epochs on small train splits.

    Truncation: contexts keep their first ``max_context_tokens`` words, questions their first
    ``max_question_tokens``. An answer reaching past the kept context words gets the no-answer label
    (0, 0) -- that affects the loss only: scoring always compares with the gold answers, so such a
    question counts as missed unless the model answers it from the kept words. No example is dropped.
    """

    name: ClassVar[str] = "bidaf"
    hyperparameters: ClassVar[tuple[str, ...]] = ("lr", "batch_size", "dropout", "epochs")
    Options: ClassVar[type[BaseModel]] = BidafOptions

    def prepare(self, data, info: dict[str, Any], options: BidafOptions) -> PreparedData:
        qa_examples(data, info, self.name)
        encoder = WordEncoder.fit(list(data["train"]["question"]) + list(data["train"]["context"]), options.vocab_size)
        splits, truncated = {}, {}
        for split in SPLITS:
            examples = data[split]
            contexts, questions = list(examples["context"]), list(examples["question"])
            context_ids, context_chars, context_lengths, offsets, truncated[split] = encoder.encode(
                contexts, options.max_context_tokens
            )
            question_ids, question_chars, question_lengths, _, _ = encoder.encode(
                questions, options.max_question_tokens
            )
            labels = word_span_labels(offsets, context_lengths, list(examples["answers"]))
            # logits position 0 is the no-answer slot: shift the word offsets by one
            no_answer = np.full((len(offsets), 1, 2), NOT_CONTEXT, dtype=np.int32)
            inputs = {
                "context_ids": context_ids,
                "context_chars": context_chars,
                "context_lengths": context_lengths,
                "question_ids": question_ids,
                "question_chars": question_chars,
                "question_lengths": question_lengths,
            }
            extra = scoring_extra(
                examples, range(len(examples)), np.concatenate([no_answer, offsets], axis=1), options.max_answer_length
            )
            splits[split] = PreparedSplit(inputs, labels, extra)
        return PreparedData(
            **splits,
            num_classes=0,  # not a classification task
            info={
                "vocab_size": encoder.words.table_size,
                "max_context_tokens": options.max_context_tokens,
                "truncated": truncated,  # contexts per split that lost words beyond max_context_tokens
            },
        )

    def build(self, config: dict[str, Any], data: PreparedData, options: BidafOptions) -> nn.Module:
        return BiDAF(
            table_size=int(data.info["vocab_size"]),
            word_dim=options.word_dim,
            char_dim=options.char_dim,
            hidden=options.hidden,
            dropout=float(config["dropout"]),
        )


# ---------------------------------------------------------------------------------------------
# bert_qa


class BertQAOptions(BertOptions):
    max_length: int = Field(384, gt=1, description="tokens per window: [CLS] question [SEP] context [SEP]")
    doc_stride: int = Field(128, gt=0, description="tokens shared by consecutive windows of a long context")
    max_question_length: int = Field(64, gt=0, description="question tokens kept (the first ones)")
    max_answer_length: int = Field(30, gt=0, description="longest answer span (tokens) decoding considers")

    @model_validator(mode="after")
    def _context_room(self) -> "BertQAOptions":
        # [CLS] question [SEP] context [SEP]: every window must fit more new context than the overlap
        room = self.max_length - self.max_question_length - 3
        if room <= self.doc_stride:
            raise ValueError(
                f"max_length - max_question_length - 3 = {room} context tokens per window must exceed "
                f"doc_stride = {self.doc_stride}"
            )
        return self


@functools.lru_cache(maxsize=1)
def pretrained_encoder(checkpoint: str):
    """``(tokenizer, config, encoder state dict)`` of a checkpoint, through bert's cached loader."""
    tokenizer, classifier = load_pretrained(checkpoint, 2)  # the head is discarded: only the encoder is kept
    return tokenizer, classifier.config, classifier.base_model.state_dict()


def set_hidden_dropout(config, dropout: float, checkpoint: str) -> None:
    """The dropout hyperparameter is the config's hidden dropout: ``hidden_dropout_prob`` (BERT,
    RoBERTa, ELECTRA, ...) or ``dropout`` (DistilBERT); attention dropout keeps the checkpoint's value."""
    for name in ("hidden_dropout_prob", "dropout"):
        if hasattr(config, name):
            setattr(config, name, dropout)
            return
    raise MetahpoError(f"checkpoint {checkpoint!r} has no hidden dropout setting in its config; bert_qa cannot set dropout")


class SpanLogits(nn.Module):
    """Wraps a transformers QA model so ``model(**inputs)`` returns ``(start_logits, end_logits)``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **rest: torch.Tensor):
        # right padding: the batch's all-padding tail columns change nothing, so cut them
        width = int(attention_mask.sum(dim=1).max())
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, **rest}
        outputs = self.model(**{name: tensor[:, :width] for name, tensor in inputs.items()})
        return outputs.start_logits, outputs.end_logits


def window_labels(encoded, example_answers: Sequence[dict]) -> torch.Tensor:
    """(start, end) token label per window: the first gold answer's tokens when it lies wholly inside
    the window's context, else (0, 0) = [CLS] = no answer (transformers' run_qa rule)."""
    labels = torch.zeros((len(encoded["input_ids"]), 2), dtype=torch.long)
    for window, example in enumerate(encoded["overflow_to_sample_mapping"]):
        spans = answer_spans(example_answers[example])
        if not spans:
            continue
        answer_start, answer_end = spans[0]
        sequence_ids = encoded.sequence_ids(window)
        context = [position for position, sequence in enumerate(sequence_ids) if sequence == 1]
        offsets = encoded["offset_mapping"][window]
        if offsets[context[0]][0] > answer_start or offsets[context[-1]][1] < answer_end:
            continue
        start = next(p for p in context if offsets[p][1] > answer_start)
        end = next(p for p in reversed(context) if offsets[p][0] < answer_end)
        labels[window] = torch.tensor([start, end])
    return labels


def context_offsets(encoded, positions: int) -> np.ndarray:
    """int32 [windows, positions, 2]: character spans of context tokens, -1 for every other position."""
    offsets = np.full((len(encoded["input_ids"]), positions, 2), NOT_CONTEXT, dtype=np.int32)
    for window, spans in enumerate(encoded["offset_mapping"]):
        for position, sequence in enumerate(encoded.sequence_ids(window)):
            if sequence == 1:
                offsets[window, position] = spans[position]
    return offsets


class BertQAFamily(QAFamily):
    """``bert_qa``: a pretrained encoder (the ``bert`` family's checkpoints and loader) with a fresh
    span head (transformers' AutoModelForQuestionAnswering), fine-tuned with AdamW.

    Windows: each question is cut to its first ``max_question_length`` tokens; a context longer than a
    window is split into windows of ``max_length`` tokens ([CLS] question [SEP] context [SEP]) that
    overlap by ``doc_stride`` tokens (tokenizer ``truncation="only_second"``,
    ``return_overflowing_tokens``). A window that does not wholly contain the first gold answer has
    the label (0, 0) = [CLS] = no answer; no example is ever dropped, and scoring takes each
    example's best span over all its windows.
    """

    name: ClassVar[str] = "bert_qa"
    hyperparameters: ClassVar[tuple[str, ...]] = ("lr", "batch_size", "epochs", "dropout", "warmup_steps")
    Options: ClassVar[type[BaseModel]] = BertQAOptions
    pretrained: ClassVar[bool] = True

    def prepare(self, data, info: dict[str, Any], options: BertQAOptions) -> PreparedData:
        qa_examples(data, info, self.name)
        tokenizer, config, _ = pretrained_encoder(options.checkpoint)
        check_max_length(self.name, options, config)
        tokenizer.padding_side = "right"  # SpanLogits trims trailing padding
        splits, windows = {}, {}
        for split in SPLITS:
            examples = data[split]
            encoded = tokenizer(
                self._cut_questions(tokenizer, list(examples["question"]), options.max_question_length),
                list(examples["context"]),
                truncation="only_second",
                max_length=options.max_length,
                stride=options.doc_stride,
                return_overflowing_tokens=True,
                return_offsets_mapping=True,
                padding="longest",
            )
            labels = window_labels(encoded, list(examples["answers"]))
            positions = len(encoded["input_ids"][0])
            inputs = {
                name: torch.tensor(encoded[name], dtype=torch.long)
                for name in ("input_ids", "attention_mask", "token_type_ids")
                if name in encoded
            }
            extra = scoring_extra(
                examples, encoded["overflow_to_sample_mapping"], context_offsets(encoded, positions), options.max_answer_length
            )
            splits[split] = PreparedSplit(inputs, labels, extra)
            windows[split] = len(labels)
        return PreparedData(
            **splits,
            num_classes=0,  # not a classification task
            info={"checkpoint": options.checkpoint, "max_length": options.max_length, "windows": windows},
        )

    @staticmethod
    def _cut_questions(tokenizer, questions: Sequence[str], max_tokens: int) -> list[str]:
        """Questions cut after their ``max_tokens``-th token (on the text, so offsets stay exact);
        leading whitespace is stripped, as some questions start with spaces that waste tokens."""
        questions = [question.lstrip() for question in questions]
        tokens = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        return [
            question[: spans[max_tokens - 1][1]] if len(spans) > max_tokens else question
            for question, spans in zip(questions, tokens)
        ]

    def build(self, config: dict[str, Any], data: PreparedData, options: BertQAOptions) -> nn.Module:
        from transformers import AutoModelForQuestionAnswering

        _, pretrained_config, encoder_state = pretrained_encoder(options.checkpoint)
        model_config = copy.deepcopy(pretrained_config)
        set_hidden_dropout(model_config, float(config["dropout"]), options.checkpoint)
        model = AutoModelForQuestionAnswering.from_config(model_config)
        # a QA model's encoder has no pooler: the classifier's pooler weights are the only extras
        result = model.base_model.load_state_dict(encoder_state, strict=False)
        if result.missing_keys:
            raise MetahpoError(
                f"checkpoint {options.checkpoint!r}: the QA model's encoder lacks pretrained weights for "
                f"{result.missing_keys[:5]}"
            )
        reset_head(model)  # the span head, from the RNG the training loop seeds per trial
        model.train()
        return SpanLogits(model)

    def optimizer(self, model: nn.Module, config: dict[str, Any]) -> torch.optim.Optimizer:
        return torch.optim.AdamW(model.parameters(), lr=float(config["lr"]), weight_decay=0.01)


BIDAF = FAMILIES.register("bidaf", BidafFamily())
BERT_QA = FAMILIES.register("bert_qa", BertQAFamily())
