"""NER families (bilstm_crf, bert_ner) on real CoNLL-2003 sentences from the offline mirror."""

from __future__ import annotations

import math

import pydantic
import pytest
import torch

from metahpo.config import DatasetParams, DownloadParams, Params
from metahpo.data.prepare import load_prepared
from metahpo.stages.download import download_dataset
from metahpo.errors import DataError
from metahpo.metrics import entity_metrics
from metahpo.models import FAMILIES
from metahpo.models.ner import IGNORE, load_token_classifier
from metahpo.training import train_model

SIZES = {"max_train": 100, "max_validation": 50, "max_test": 50}
BILSTM_CONFIG = {"lr": 0.01, "batch_size": 16, "epochs": 2, "dropout": 0.3, "hidden": 64}
BERT_CONFIG = {"lr": 5e-5, "batch_size": 16, "epochs": 1, "dropout": 0.3, "warmup_steps": 0}
SHORT_BERT = {"max_length": 32}  # cuts many CoNLL sentences: exercises truncation, keeps CPU time low
BOTH_FAMILIES = [("bilstm_crf", BILSTM_CONFIG, {}), ("bert_ner", BERT_CONFIG, SHORT_BERT)]
SLOW = pytest.mark.slow  # training a BERT, or whole epochs: 10-50 s each on a CPU
FAST_BILSTM_SLOW_BERT = [BOTH_FAMILIES[0], pytest.param(*BOTH_FAMILIES[1], marks=SLOW)]


@pytest.fixture(scope="module")
def conll_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("conll2003")


@pytest.fixture
def conll(mirror, conll_dir):
    """The canonical token_classification DatasetDict (tags = ner_tags), downloaded once per module."""
    if not (conll_dir / "metahpo.json").exists():
        params = Params.model_construct(
            seed=0,
            datasets={"conll": DatasetParams(source="eriktks/conll2003", columns={"tags": "ner_tags"}, **SIZES)},
            download=DownloadParams(mirror=str(mirror)),
        )
        download_dataset("conll", params, conll_dir)
    return load_prepared(conll_dir)


def prepared(name: str, conll, **options):
    family = FAMILIES.get(name)
    chosen = family.options(options)
    return family, chosen, family.prepare(*conll, chosen)


def gold_as_predictions(split) -> list[torch.Tensor]:
    """The gold tag ids as one batch of predictions (a perfect tagger, before any truncation)."""
    names = split.extra["label_names"]
    width = max(len(tags) for tags in split.extra["gold_tags"])
    ids = torch.full((len(split.extra["gold_tags"]), width), IGNORE)
    for row, tags in enumerate(split.extra["gold_tags"]):
        ids[row, : len(tags)] = torch.tensor([names.index(tag) for tag in tags], dtype=torch.long)
    return [ids]


def test_registered_with_the_token_classification_contract():
    bilstm, bert = FAMILIES.get("bilstm_crf"), FAMILIES.get("bert_ner")
    assert bilstm.hyperparameters == ("lr", "batch_size", "epochs", "dropout", "hidden")
    assert bert.hyperparameters == ("lr", "batch_size", "epochs", "dropout", "warmup_steps")
    for family in (bilstm, bert):
        assert (family.task_type, family.modalities, family.primary_metric) == ("token_classification", ("text",), "f1")
        with pytest.raises(pydantic.ValidationError):
            family.options({"no_such_option": 1})


def test_a_classification_dataset_is_refused(conll):
    data, info = conll
    family = FAMILIES.get("bilstm_crf")
    with pytest.raises(DataError, match="needs a token_classification dataset"):
        family.prepare(data, {**info, "task_type": "classification"}, family.options({}))


def test_gold_tags_score_perfectly(conll):
    family, _, data = prepared("bilstm_crf", conll)
    for split in (data.train, data.validation, data.test):
        assert family.score(split, gold_as_predictions(split)) == pytest.approx(
            {"precision": 1.0, "recall": 1.0, "f1": 1.0, "accuracy": 1.0}
        )


def test_bert_alignment_first_subtoken_carries_the_tag(conll):
    family, options, data = prepared("bert_ner", conll, **SHORT_BERT)
    tokenizer, _ = load_token_classifier(options.checkpoint, tuple(data.info["label_names"]))
    source = conll[0]
    for split_name in ("train", "validation", "test"):
        split = getattr(data, split_name)
        assert len(split) == len(source[split_name])  # no sentence dropped, however long
        for row, (words, tags) in enumerate(zip(source[split_name]["tokens"], source[split_name]["tags"])):
            word_ids = tokenizer(words, is_split_into_words=True, truncation=True, max_length=32).word_ids()
            first = {word: word_ids.index(word) for word in set(word_ids) - {None}}
            positions = split.inputs["word_positions"][row, : len(words)].tolist()
            assert positions == [first.get(word, -1) for word in range(len(words))]
            expected = torch.full_like(split.labels[row], IGNORE)
            for word, position in first.items():
                expected[position] = tags[word]
            assert torch.equal(split.labels[row], expected)  # other sub-tokens, [CLS], [SEP], padding: -100
    assert data.info["truncated"]["train"] > 0  # max_length 32 cut some sentences

    # decoding: a perfect sub-token tagger gives back one tag per word, "O" past the cut
    split = data.train
    one_hot = torch.nn.functional.one_hot(split.labels.clamp(min=0), len(data.info["label_names"])).float()
    _, outputs = family.step(lambda **inputs: one_hot, split.inputs, split.labels)
    decoded = family.predictions(outputs)
    gold = split.extra["gold_tags"]
    names = data.info["label_names"]
    cut = []
    for row, tags in enumerate(gold):
        kept = split.extra["kept_words"][row]
        assert decoded[row, :kept].tolist() == [names.index(tag) for tag in tags[:kept]]
        assert (decoded[row, kept:] == IGNORE).all()
        cut.append(tags[:kept] + ["O"] * (len(tags) - kept))
    assert family.score(split, [decoded]) == pytest.approx(entity_metrics(gold, cut))


@pytest.mark.parametrize(("name", "config", "options"), FAST_BILSTM_SLOW_BERT)
def test_loss_is_finite_and_falls_with_a_few_steps(conll, name, config, options):
    family, chosen, data = prepared(name, conll, **options)
    torch.manual_seed(0)
    model = family.build(config, data, chosen)
    optimizer = family.optimizer(model, config)
    inputs, labels = data.train.batch(torch.arange(8))
    losses = []
    for _ in range(4):
        loss, outputs = family.step(model, inputs, labels)
        assert math.isfinite(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert family.predictions(outputs).shape[0] == 8
    if name == "bert_ner":  # the trial's dropout is the config's hidden dropout, head included
        assert model.model.config.hidden_dropout_prob == config["dropout"]
        assert model.model.dropout.p == config["dropout"]


@SLOW
@pytest.mark.parametrize(("name", "config", "options"), BOTH_FAMILIES)
def test_train_model_reports_entity_metrics(conll, name, config, options):
    family, chosen, data = prepared(name, conll, **options)
    result = train_model(family, data, config, epochs=config["epochs"], seed=0, device="cpu", options=chosen)
    assert result.ok, result.message
    assert result.metric == "f1" and result.epochs_run == config["epochs"]
    assert set(result.test_metrics) == {"precision", "recall", "f1", "accuracy"}
    assert all(0.0 <= value <= 1.0 for value in result.test_metrics.values())
    assert 0.0 <= result.val_metric <= 1.0 and result.test_metric == result.test_metrics["f1"]
