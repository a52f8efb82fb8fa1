"""The resnet18 and vit families: small-image shapes, the ResNet-18 layout, and learning on real MNIST.

The learning tests use a tiny subsample of MNIST from the offline mirror (skipped without it), made
by the download stage's own code so the tensors are the ones a sweep would see.
"""

from __future__ import annotations

import math

import datasets
import numpy as np
import pytest
import torch

from metahpo.config import DatasetParams, DownloadParams, Params
from metahpo.data.prepare import load_prepared
from metahpo.stages.download import download_dataset
from metahpo.models import FAMILIES
from metahpo.models.vision import ResNetClassifier
from metahpo.training import train_model

# one config per family from its grid that learns within a handful of steps
CONFIGS = {
    "resnet18": {"lr": 0.01, "batch_size": 64, "weight_decay": 5e-4},
    "vit": {"lr": 1e-3, "batch_size": 64, "weight_decay": 0.05, "warmup_steps": 0},
}
# (family, options): the ResNet once per stem
VARIANTS = [("resnet18", {"stem": "small"}), ("resnet18", {"stem": "imagenet"}), ("vit", {})]
RESNET18_IMAGENET_PARAMETERS = 11_689_512  # torchvision's resnet18: 3 channels, 1000 classes


def random_images(
    shape: tuple[int, int, int], rows: int = 4, num_classes: int = 10
) -> tuple[datasets.DatasetDict, dict]:
    """A canonical image DatasetDict of random pixels, for shapes no mirror dataset has (e.g. 32x32x3)."""
    rng = np.random.default_rng(0)
    features = datasets.Features(
        {
            "input": datasets.Array3D(shape=shape, dtype="uint8"),
            "label": datasets.ClassLabel(names=[str(i) for i in range(num_classes)]),
        }
    )
    split = {"input": rng.integers(0, 256, (rows, *shape), dtype=np.uint8), "label": np.arange(rows) % num_classes}
    data = datasets.DatasetDict(
        {name: datasets.Dataset.from_dict(split, features=features) for name in ("train", "validation", "test")}
    )
    return data, {"modality": "image", "num_classes": num_classes, "input_shape": list(shape)}


def prepared_and_model(family_name: str, raw_options: dict, data, info):
    family = FAMILIES.get(family_name)
    options = family.options(raw_options)
    prepared = family.prepare(data, info, options)
    torch.manual_seed(0)
    return family, options, prepared, family.build(CONFIGS[family_name], prepared, options)


@pytest.fixture(scope="module")
def _mnist_cache() -> dict:
    return {}


@pytest.fixture
def mnist(mirror, _mnist_cache, tmp_path_factory):
    """MNIST through the download stage: 128 train, 64 validation, 64 test rows; made once per module."""
    if not _mnist_cache:
        params = Params.model_construct(
            seed=0,
            datasets={"mnist": DatasetParams(source="mnist", max_train=128, max_validation=64, max_test=64)},
            download=DownloadParams(mirror=str(mirror)),
        )
        out = tmp_path_factory.mktemp("mnist") / "mnist"
        download_dataset("mnist", params, out)
        _mnist_cache["data"] = load_prepared(out)
    return _mnist_cache["data"]


# --- shapes and layout ------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(8, 8, 1), (28, 28, 1), (32, 32, 3)], ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("family_name, raw_options", VARIANTS, ids=["resnet18-small", "resnet18-imagenet", "vit"])
def test_forward_gives_one_logit_per_class_for_small_images(family_name, raw_options, shape):
    data, info = random_images(shape, num_classes=7)
    _, _, prepared, model = prepared_and_model(family_name, raw_options, data, info)
    model.eval()
    with torch.no_grad():
        logits = model(**prepared.train.inputs)
    assert logits.shape == (4, 7) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize(
    "stem, size, last_stage_size",
    [("small", 8, 1), ("small", 28, 4), ("small", 32, 4), ("imagenet", 8, 1), ("imagenet", 28, 1), ("imagenet", 64, 2)],
)
def test_resnet_stems_keep_small_images_from_collapsing(stem, size, last_stage_size):
    # small: stride 8 over the stages only; imagenet: stride 32, with inputs upsampled to >= 32x32
    model = ResNetClassifier(num_channels=1, num_classes=10, stem=stem).eval()
    captured = {}
    model.model.resnet.encoder.register_forward_hook(
        lambda module, args, output: captured.update(hidden=output.last_hidden_state)
    )
    with torch.no_grad():
        model(x=torch.randn(1, 1, size, size))
    assert captured["hidden"].shape == (1, 512, last_stage_size, last_stage_size)


def test_resnet18_has_the_resnet18_parameter_count():
    def count(model: torch.nn.Module) -> int:
        return sum(p.numel() for p in model.parameters())

    assert count(ResNetClassifier(3, 1000, "imagenet")) == RESNET18_IMAGENET_PARAMETERS
    # 10 classes: a 512x10 head instead of 512x1000 -> ~11.18M
    ten_classes = RESNET18_IMAGENET_PARAMETERS - 990 * (512 + 1)
    assert count(ResNetClassifier(3, 10, "imagenet")) == ten_classes == 11_181_642
    # the small stem swaps the 7x7x3x64 conv for a 3x3x3x64 one: the usual CIFAR ResNet-18 count
    assert count(ResNetClassifier(3, 10, "small")) == ten_classes - (7 * 7 - 3 * 3) * 3 * 64 == 11_173_962


def test_vit_options_are_checked_and_images_padded_to_whole_patches():
    family = FAMILIES.get("vit")
    with pytest.raises(ValueError, match="extra"):
        family.options({"patch_sizes": 4})
    with pytest.raises(ValueError, match="multiple of num_attention_heads"):
        family.options({"hidden_size": 100, "num_attention_heads": 3})
    data, info = random_images((30, 30, 1))
    _, _, prepared, model = prepared_and_model("vit", {"patch_size": 4, "num_hidden_layers": 1}, data, info)
    assert model.image_size == (32, 32)
    assert model(**prepared.train.inputs).shape == (4, 10)


def test_families_are_registered_with_their_search_space():
    assert FAMILIES.get("resnet18").hyperparameters == ("lr", "batch_size", "weight_decay")
    assert FAMILIES.get("vit").hyperparameters == ("lr", "batch_size", "weight_decay", "warmup_steps")
    for name in ("resnet18", "vit"):
        family = FAMILIES.get(name)
        assert family.modalities == ("image",) and family.task_type == "classification"
        assert family.pretrained is False


# --- learning on MNIST ------------------------------------------------------------------------------


@pytest.mark.slow  # ~30 s each on a CPU
@pytest.mark.parametrize("family_name, raw_options", [VARIANTS[0], VARIANTS[2]], ids=["resnet18", "vit"])
def test_a_few_optimizer_steps_reduce_the_training_loss(mnist, family_name, raw_options):
    family, _, prepared, model = prepared_and_model(family_name, raw_options, *mnist)
    optimizer = family.optimizer(model, CONFIGS[family_name])
    # weight decay only on weight tensors (ndim >= 2), never on biases and norm scales
    assert [group["weight_decay"] for group in optimizer.param_groups] == [CONFIGS[family_name]["weight_decay"], 0.0]
    inputs, labels = prepared.train.batch(torch.arange(12))
    model.train()
    losses = []
    for _ in range(8):
        loss, _ = family.step(model, inputs, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


@pytest.mark.slow  # a whole epoch: 25-30 s each on a CPU
@pytest.mark.parametrize("family_name", ["resnet18", "vit"])
def test_one_epoch_of_train_model_gives_finite_metrics(mnist, family_name):
    data, info = mnist
    family = FAMILIES.get(family_name)
    prepared = family.prepare(data, info, family.options({}))
    result = train_model(family, prepared, CONFIGS[family_name], epochs=1, seed=0, device="cpu")
    assert result.ok, result.message
    assert result.epochs_run == 1 and math.isfinite(result.curve_train_loss[0])
    assert set(result.test_metrics) >= {"accuracy", "macro_f1", "macro_precision", "macro_recall"}
    assert all(math.isfinite(value) for value in result.test_metrics.values())
    assert math.isfinite(result.val_metric)
