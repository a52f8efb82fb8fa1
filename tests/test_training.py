"""train_model: learning, determinism, LR schedule, and the diverged / oom / failed states."""

from __future__ import annotations

import math

import pytest
import torch
from sklearn.metrics import accuracy_score

from metahpo.errors import MetahpoError
from metahpo.models import FAMILIES
from metahpo.models.mlp import MLPFamily
from metahpo.training import TrainResult, resolve_device, train_model, warmup_linear_decay
from test_models_vision_tabular import canonical_digits, one_torch_thread  # noqa: F401 (autouse)

MLP_CONFIG = {"lr": 0.003, "batch_size": 64, "hidden": 64, "dropout": 0.1}


@pytest.fixture(scope="module")
def digits_mlp():
    data, info = canonical_digits()
    family = FAMILIES.get("mlp")
    return family.prepare(data, info, family.options({}))


class BrokenForward(torch.nn.Module):
    """A model whose forward fails in a chosen way (or returns NaN logits)."""

    def __init__(self, failure, num_classes: int) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(1, num_classes)
        self.failure = failure

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.failure == "nan":
            return self.linear(torch.full((len(x), 1), float("nan")))
        raise self.failure


class BrokenFamily(MLPFamily):
    def __init__(self, failure) -> None:
        self.failure = failure

    def build(self, config, data, options):
        return BrokenForward(self.failure, data.num_classes)


def assert_no_metrics(result: TrainResult) -> None:
    assert math.isnan(result.val_metric) and math.isnan(result.test_accuracy) and math.isnan(result.test_macro_f1)


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(MetahpoError, match="cuda was requested but no CUDA GPU"):
            resolve_device("cuda")


def test_mlp_learns_digits_and_reports_every_epoch(digits_mlp):
    records = []
    result = train_model(
        "mlp", digits_mlp, MLP_CONFIG, epochs=3, seed=0, device="cpu", on_epoch=lambda e, r: records.append((e, r))
    )
    assert result.state == "ok" and result.message == ""
    assert result.epochs_run == 3 and result.device == "cpu"
    assert result.val_metric > 0.8 and result.test_accuracy > 0.8 and 0.7 < result.test_macro_f1 <= 1
    assert result.val_metric == result.curve_val_metric[-1]
    assert result.curve_train_loss[-1] < result.curve_train_loss[0]
    assert [e for e, _ in records] == [1, 2, 3]
    assert set(records[0][1]) == {"train_loss", "val_loss", "val_metric", "seconds"}
    assert [r["val_loss"] for _, r in records] == result.curve_val_loss
    assert all(s > 0 for s in result.curve_seconds) and result.seconds >= sum(result.curve_seconds)
    assert result.model is None


def test_cnn_learns_digits():
    data, info = canonical_digits(max_train=500)
    family = FAMILIES.get("cnn")
    prepared = family.prepare(data, info, family.options({}))
    config = {"lr": 0.003, "batch_size": 32, "filters": 16, "dropout": 0.2}
    result = train_model(family, prepared, config, epochs=4, seed=0, device="cpu")
    assert result.state == "ok", result.message
    assert result.val_metric > 0.8


def test_same_seed_gives_identical_runs_and_restores_global_flags(digits_mlp):
    before = torch.are_deterministic_algorithms_enabled()
    runs = [train_model("mlp", digits_mlp, MLP_CONFIG, epochs=2, seed=7, device="cpu") for _ in range(2)]
    other_seed = train_model("mlp", digits_mlp, MLP_CONFIG, epochs=2, seed=8, device="cpu")
    assert torch.are_deterministic_algorithms_enabled() == before
    first, second = (run.metrics() for run in runs)
    for timing in ("seconds", "curve_seconds"):
        first.pop(timing), second.pop(timing)
    assert first == second
    assert other_seed.curve_train_loss != runs[0].curve_train_loss


def test_config_epochs_override_and_warmup_schedule_reaches_zero(digits_mlp):
    optimizers = []

    class RecordingFamily(MLPFamily):
        def optimizer(self, model, config):
            optimizers.append(super().optimizer(model, config))
            return optimizers[-1]

    config = {**MLP_CONFIG, "epochs": 2, "warmup_steps": 5}
    result = train_model(RecordingFamily(), digits_mlp, config, epochs=9, seed=0, device="cpu")
    assert result.state == "ok" and result.epochs_run == 2
    # linear decay ends at exactly 0 after the last of 2 x ceil(1000 / 64) steps
    assert optimizers[0].param_groups[0]["lr"] == 0.0


def test_warmup_linear_decay_shape():
    factor = warmup_linear_decay(warmup_steps=4, total_steps=12)
    assert [factor(s) for s in range(13)] == [0, 0.25, 0.5, 0.75, 1, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125, 0]


def test_nan_loss_is_diverged(digits_mlp):
    result = train_model(BrokenFamily("nan"), digits_mlp, MLP_CONFIG, epochs=3, seed=0, device="cpu")
    assert result.state == "diverged"
    assert "epoch 1, step 1" in result.message
    assert result.epochs_run == 0
    assert_no_metrics(result)


def test_divergence_later_keeps_the_finished_epochs(digits_mlp):
    class NaNFromSecondEpoch(MLPFamily):
        def build(self, config, data, options):
            model = super().build(config, data, options)
            forward, train_steps = model.forward, []

            def poisoned(x):
                train_steps.append(model.training)
                steps_per_epoch = -(-len(data.train) // config["batch_size"])
                return forward(x) * (float("nan") if sum(train_steps) > steps_per_epoch else 1.0)

            model.forward = poisoned
            return model

    result = train_model(NaNFromSecondEpoch(), digits_mlp, MLP_CONFIG, epochs=3, seed=0, device="cpu")
    assert result.state == "diverged" and "epoch 2, step 1" in result.message
    assert result.epochs_run == 1 and len(result.curve_val_metric) == 1
    assert_no_metrics(result)


@pytest.mark.parametrize(
    "error",
    [torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), RuntimeError("CUDA error: out of memory")],
)
def test_out_of_memory_is_oom(digits_mlp, error):
    result = train_model(BrokenFamily(error), digits_mlp, MLP_CONFIG, epochs=2, seed=0, device="cpu")
    assert result.state == "oom"
    assert "out of memory" in result.message
    assert_no_metrics(result)


def test_other_errors_are_failed_with_type_and_message(digits_mlp):
    result = train_model(BrokenFamily(ValueError("bad shape")), digits_mlp, MLP_CONFIG, epochs=2, seed=0, device="cpu")
    assert result.state == "failed"
    assert result.message == "ValueError: bad shape"
    assert_no_metrics(result)


def test_keyboard_interrupt_propagates(digits_mlp):
    with pytest.raises(KeyboardInterrupt):
        train_model(BrokenFamily(KeyboardInterrupt()), digits_mlp, MLP_CONFIG, epochs=2, seed=0, device="cpu")


def test_keep_model_returns_the_trained_model(digits_mlp):
    result = train_model("mlp", digits_mlp, MLP_CONFIG, epochs=2, seed=0, device="cpu", keep_model=True)
    model = result.model
    assert isinstance(model, torch.nn.Module) and not model.training
    assert next(model.parameters()).device.type == "cpu"
    with torch.no_grad():
        predictions = model(**digits_mlp.test.inputs).argmax(dim=1)
    assert accuracy_score(digits_mlp.test.labels, predictions) == pytest.approx(result.test_accuracy)
