"""Text families (lstm, gru, bert) on real IMDB reviews from the offline Hub mirror."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value
from pydantic import ValidationError
from sklearn.metrics import accuracy_score, f1_score
from torch.nn.utils.rnn import pack_padded_sequence

from metahpo.errors import DataError, MetahpoError
from metahpo.models.base import FAMILIES
from metahpo.models import bert as bert_module
from metahpo.models.rnn import WordTokenizer, tokenize

MIRROR = Path(__file__).resolve().parents[1].parent / "shared" / "hf-mirror"  # <repo root>/../shared
IMDB_TRAIN = MIRROR / "stanfordnlp" / "imdb" / "data" / "train-00000-of-00001.parquet"
SPLIT_ROWS = {"train": 240, "validation": 80, "test": 80}

pytestmark = pytest.mark.skipif(not IMDB_TRAIN.is_file(), reason=f"IMDB mirror not found at {IMDB_TRAIN}")


@pytest.fixture(scope="module")
def imdb() -> tuple[DatasetDict, dict]:
    """A canonical text DatasetDict (input: string, label: ClassLabel neg/pos) of 400 real reviews."""
    frame = pd.read_parquet(IMDB_TRAIN, columns=["text", "label"])
    frame = frame.sample(n=sum(SPLIT_ROWS.values()), random_state=0).reset_index(drop=True)
    features = Features({"input": Value("string"), "label": ClassLabel(names=["neg", "pos"])})
    splits, start = {}, 0
    for split, rows in SPLIT_ROWS.items():
        part = frame.iloc[start : start + rows]
        start += rows
        splits[split] = Dataset.from_dict(
            {"input": part["text"].tolist(), "label": part["label"].tolist()}, features=features
        )
    info = {
        "dataset": "imdb_sample",
        "source": "stanfordnlp/imdb",
        "modality": "text",
        "input_column": "text",
        "label_column": "label",
        "num_classes": 2,
        "label_names": ["neg", "pos"],
        "input_shape": None,
        "split_sizes": dict(SPLIT_ROWS),
        "carved": ["validation", "test"],
    }
    return DatasetDict(splits), info


def eval_loss(model, inputs, labels) -> float:
    model.eval()  # no dropout: the before/after comparison measures the weights only
    with torch.no_grad():
        return torch.nn.functional.cross_entropy(model(**inputs), labels).item()


def loss_before_and_after_steps(family_name, model, config, inputs, labels, steps):
    """Train on one fixed batch with the family's optimizer; return its loss before and after."""
    before = eval_loss(model, inputs, labels)
    optimizer = FAMILIES.get(family_name).optimizer(model, config)
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(**inputs), labels).backward()
        optimizer.step()
    return before, eval_loss(model, inputs, labels)


# ---- word tokenizer and the recurrent families ------------------------------------------------


def test_word_tokenizer_vocabulary_is_deterministic():
    texts = ["The movie, the PLOT!", "b a a b c", "don't stop"]
    tokenizer = WordTokenizer.fit(texts, vocab_size=4, max_length=8)
    # counts: the 2, a 2, b 2, then one each (",", "!", "c", "don't", "movie", "plot", "stop")
    assert tokenizer.words == ["a", "b", "the", "!"]  # ties broken alphabetically
    assert WordTokenizer.fit(list(reversed(texts)), vocab_size=4, max_length=8).words == tokenizer.words
    assert tokenize("Don't STOP, now!") == ["don't", "stop", ",", "now", "!"]
    input_ids, lengths, truncated = tokenizer.encode(["the plot", ""])
    assert input_ids[0, :2].tolist() == [4, 1]  # "the" is word 2 -> id 4; "plot" is unknown
    assert lengths.tolist() == [2, 1]  # the empty text keeps one unknown token
    assert input_ids[1, 0].item() == 1 and truncated == 0


def test_recurrent_prepare_truncates_but_keeps_every_example(imdb):
    data, info = imdb
    family = FAMILIES.get("lstm")
    options = family.options({"vocab_size": 500, "max_length": 40})
    prepared = family.prepare(data, info, options)
    again = family.prepare(data, info, options)
    for split, rows in SPLIT_ROWS.items():
        part = getattr(prepared, split)
        assert len(part) == rows
        assert part.inputs["input_ids"].shape == (rows, 40)
        assert part.labels.tolist() == data[split]["label"]
        assert torch.equal(part.inputs["input_ids"], getattr(again, split).inputs["input_ids"])
        lengths = part.inputs["lengths"]
        assert int(lengths.min()) >= 1 and int(lengths.max()) == 40
        assert prepared.info["truncated"][split] > 0  # IMDB reviews are longer than 40 tokens
    assert prepared.info["vocab_size"] == 502  # 500 words + padding + unknown
    # each text keeps min(its token count, max_length) tokens, then padding
    expected = [min(len(tokenize(text)), 40) for text in data["train"]["input"]]
    assert prepared.train.inputs["lengths"].tolist() == expected
    padding = torch.arange(40)[None, :] >= prepared.train.inputs["lengths"][:, None]
    assert bool((prepared.train.inputs["input_ids"][padding] == 0).all())


@pytest.fixture(scope="module")
def recurrent_prepared(imdb):
    data, info = imdb
    family = FAMILIES.get("gru")  # prepare is shared by lstm and gru
    options = family.options({"vocab_size": 5000, "max_length": 64})
    return family.prepare(data, info, options), options


@pytest.mark.parametrize("name", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_recurrent_forward_shapes(recurrent_prepared, name, bidirectional):
    prepared, options = recurrent_prepared
    options = options.model_copy(update={"bidirectional": bidirectional})
    config = {"lr": 0.01, "batch_size": 8, "layers": 2, "hidden": 16}
    model = FAMILIES.get(name).build(config, prepared, options)
    assert model.rnn.num_layers == 2 and model.rnn.dropout > 0
    inputs, _ = prepared.validation.batch(torch.arange(8))
    logits = model(**inputs)
    assert logits.shape == (8, 2) and torch.isfinite(logits).all()


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_recurrent_overfits_a_small_batch(recurrent_prepared, name):
    prepared, options = recurrent_prepared
    torch.manual_seed(0)
    config = {"lr": 0.01, "batch_size": 32, "layers": 1, "hidden": 32}
    model = FAMILIES.get(name).build(config, prepared, options)
    inputs, labels = prepared.train.batch(torch.arange(32))
    before, after = loss_before_and_after_steps(name, model, config, inputs, labels, steps=12)
    assert after < 0.5 * before, (before, after)


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_unidirectional_shortcut_equals_packed_final_state(recurrent_prepared, name):
    """The padded fast path must give the logits of the packed final state (padding ignored)."""
    prepared, options = recurrent_prepared
    torch.manual_seed(0)
    model = FAMILIES.get(name).build({"layers": 2, "hidden": 16}, prepared, options).eval()
    inputs, _ = prepared.test.batch(torch.arange(16))
    lengths = inputs["lengths"]
    packed = pack_padded_sequence(model.embedding(inputs["input_ids"]), lengths, batch_first=True, enforce_sorted=False)
    with torch.no_grad():
        _, state = model.rnn(packed)
        final = state[0] if isinstance(state, tuple) else state
        assert torch.allclose(model(**inputs), model.head(final[-1]), atol=1e-5)


def test_recurrent_families_share_one_implementation():
    lstm, gru = FAMILIES.get("lstm"), FAMILIES.get("gru")
    assert type(lstm) is type(gru) and lstm.cell is torch.nn.LSTM and gru.cell is torch.nn.GRU
    assert lstm.hyperparameters == ("lr", "batch_size", "layers", "hidden")
    assert lstm.modalities == ("text",) and not lstm.pretrained


def test_recurrent_rejects_non_text_data(imdb):
    data, info = imdb
    family = FAMILIES.get("gru")
    with pytest.raises(DataError, match="text"):
        family.prepare(data, {**info, "modality": "image"}, family.options({}))


# ---- bert ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bert_prepared(imdb):
    data, info = imdb
    family = FAMILIES.get("bert")
    options = family.options({"max_length": 32})
    bert_module.load_pretrained.cache_clear()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")  # the bundled weights must load without the network
        prepared = family.prepare(data, info, options)
    return prepared, options


def test_bert_prepare_truncates_but_keeps_every_example(bert_prepared):
    prepared, _ = bert_prepared
    for split, rows in SPLIT_ROWS.items():
        part = getattr(prepared, split)
        assert len(part) == rows
        assert set(part.inputs) == {"input_ids", "attention_mask", "token_type_ids"}
        assert part.inputs["input_ids"].shape == (rows, 32)  # the longest is cut to max_length
        assert int(part.inputs["attention_mask"].sum(dim=1).min()) > 2
        assert prepared.info["truncated"][split] > 0
    assert FAMILIES.get("bert").pretrained
    assert FAMILIES.get("bert").hyperparameters == ("lr", "batch_size", "epochs", "warmup_steps")


@pytest.mark.slow  # ~14 s of BERT steps on a CPU
def test_bert_forward_and_a_few_adamw_steps_reduce_the_loss(bert_prepared):
    prepared, options = bert_prepared
    family = FAMILIES.get("bert")
    config = {"lr": 2e-4, "batch_size": 16, "epochs": 1, "warmup_steps": 0}
    torch.manual_seed(0)
    model = family.build(config, prepared, options)
    optimizer = family.optimizer(model, config)
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.param_groups[0]["weight_decay"] == 0.01
    inputs, labels = prepared.train.batch(torch.arange(16))
    assert model(**inputs).shape == (16, 2)
    before, after = loss_before_and_after_steps("bert", model, config, inputs, labels, steps=5)
    assert after < 0.8 * before, (before, after)


def test_bert_trials_start_from_the_same_pretrained_encoder(bert_prepared):
    prepared, options = bert_prepared
    family = FAMILIES.get("bert")
    config = {"lr": 1e-3, "batch_size": 4, "epochs": 1, "warmup_steps": 0}

    torch.manual_seed(1)
    first = family.build(config, prepared, options)
    pristine_encoder = {k: v.clone() for k, v in first.model.base_model.state_dict().items()}
    first_head = first.model.classifier.weight.detach().clone()
    inputs, labels = prepared.train.batch(torch.arange(4))
    loss_before_and_after_steps("bert", first, config, inputs, labels, steps=1)  # trial 1 trains in place

    torch.manual_seed(2)
    second = family.build(config, prepared, options)
    for name, tensor in second.model.base_model.state_dict().items():
        assert torch.equal(tensor, pristine_encoder[name]), name
    assert not torch.equal(second.model.classifier.weight, first_head)  # head seeded per trial
    torch.manual_seed(1)
    assert torch.equal(family.build(config, prepared, options).model.classifier.weight, first_head)


@pytest.mark.parametrize("name", ["lstm", "gru", "bert"])
def test_unknown_option_key_is_rejected(name):
    with pytest.raises(ValidationError, match="max_lenght"):
        FAMILIES.get(name).options({"max_lenght": 64})


def test_unreachable_checkpoint_fails_fast_with_a_fix(imdb, monkeypatch):
    """A Hub id that is not cached costs one short probe of the Hub, never a download (which retries)."""
    import socket

    import huggingface_hub
    import transformers

    data, info = imdb
    family = FAMILIES.get("bert")
    # a closed local port stands in for the Hub, so the test does not depend on this machine's network
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub, "is_offline_mode", lambda: False)
    stand_in_url = lambda repo_id, filename, **_: f"http://127.0.0.1:9/{repo_id}/{filename}"  # noqa: E731
    monkeypatch.setattr(huggingface_hub, "hf_hub_url", stand_in_url)
    probes, loads = [], []
    real_connect = socket.create_connection
    monkeypatch.setattr(socket, "create_connection", lambda address, timeout=None, *rest, **kwargs: (
        probes.append((address, timeout)) or real_connect(address, timeout, *rest, **kwargs)))  # fmt: skip
    for auto in (transformers.AutoTokenizer, transformers.AutoModelForSequenceClassification):
        real_load = auto.from_pretrained

        def spy(name, *args, _real=real_load, **kwargs):
            loads.append(kwargs.get("local_files_only", False))
            if not kwargs.get("local_files_only", False):
                raise OSError("stand-in: a download was attempted")
            return _real(name, *args, **kwargs)

        monkeypatch.setattr(auto, "from_pretrained", spy)

    with pytest.raises(MetahpoError, match="metahpo-tests/no-such-model") as raised:
        family.prepare(data, info, family.options({"checkpoint": "metahpo-tests/no-such-model"}))
    assert loads and all(loads), "only the local cache may be read: a download retries with backoff"
    assert "options.checkpoint" in str(raised.value) and "cannot fetch checkpoint" in str(raised.value)
    to_stand_in = [timeout for address, timeout in probes if address == ("127.0.0.1", 9)]
    assert len(to_stand_in) == 1 and 0 < to_stand_in[0] <= bert_module.HUB_PROBE_TIMEOUT_S  # one probe, no retries
    with pytest.raises(MetahpoError, match="does not exist"):
        family.prepare(data, info, family.options({"checkpoint": "./no/such/folder"}))


def test_shared_training_loop_runs_a_gru_epoch(recurrent_prepared):
    training = pytest.importorskip("metahpo.training")
    prepared, options = recurrent_prepared
    config = {"lr": 0.01, "batch_size": 32, "layers": 1, "hidden": 16}
    result = training.train_model(
        "gru", prepared, config, epochs=1, seed=0, device="cpu", options=options, keep_model=True
    )
    assert result.state == "ok", result.message
    assert result.epochs_run == 1 and len(result.curve_val_metric) == 1
    # the reported metrics are those of the trained model's own predictions on each split
    with torch.no_grad():
        predicted = {
            split: result.model(**getattr(prepared, split).batch(torch.arange(SPLIT_ROWS[split]))[0]).argmax(dim=1).numpy()
            for split in ("validation", "test")
        }
    test_labels = prepared.test.labels.numpy()
    macro_f1 = f1_score(test_labels, predicted["test"], average="macro", zero_division=0)
    assert result.test_accuracy == pytest.approx(accuracy_score(test_labels, predicted["test"]), abs=1e-12)
    assert result.test_macro_f1 == pytest.approx(macro_f1, abs=1e-12)
    assert result.metric == "accuracy" and result.test_metric == result.test_accuracy
    assert result.val_metric == result.curve_val_metric[0] == pytest.approx(
        accuracy_score(prepared.validation.labels.numpy(), predicted["validation"]), abs=1e-12
    )


def test_recurrent_vocabulary_option_reads_another_dataset_with_the_source_words(imdb, tmp_path):
    """A pool member trained here reads new texts with its own words, not a vocabulary fitted on them."""
    import json

    family = FAMILIES.get("gru")
    source = family.prepare(*imdb, family.options({"vocab_size": 300, "max_length": 32}))
    words = tmp_path / "vocabulary.json"
    words.write_text(json.dumps(source.info["words"]))
    data, info = imdb
    other = DatasetDict({split: data[split].select(range(20)) for split in data})  # a vocabulary fit here would differ
    fixed = family.prepare(other, info, family.options({"vocab_size": 300, "max_length": 32, "vocabulary": str(words)}))
    refitted = family.prepare(other, info, family.options({"vocab_size": 300, "max_length": 32}))
    assert torch.equal(fixed.train.inputs["input_ids"], source.train.inputs["input_ids"][:20])
    assert fixed.info["vocab_size"] == source.info["vocab_size"]
    assert not torch.equal(refitted.train.inputs["input_ids"], fixed.train.inputs["input_ids"])
