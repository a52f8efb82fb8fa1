"""metahpo.fewshot: hand-worked meta-gradients, episodes and their tables, meta-training resume, a task family
where meta-learning must beat random init, saved inits and the conv4 family, `metahpo fewshot evaluate`."""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace

import datasets
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from metahpo.cli import main
from metahpo.config import DatasetParams, DownloadParams
from metahpo.data import DATASETS, sources
from metahpo.data.prepare import load_prepared, prepare_dataset
from metahpo.errors import DataError, MetahpoError
from metahpo.fewshot import meta_train
from metahpo.fewshot.backbone import Conv4, forward, linear_logits, zero_head
from metahpo.fewshot.episodes import (
    ClassPool,
    Episode,
    EpisodeSampler,
    load_pool,
    read_episode_table,
    resize,
    split_classes,
    write_episode_table,
)
from metahpo.fewshot.evaluate import Z_95, evaluate_method, interval, macro_f1, summarize
from metahpo.fewshot.inits import save_init, load_init
from metahpo.fewshot.meta_train import LoopSettings, new_body, train_init
from metahpo.fewshot.methods import METHODS, Inner, sgd_steps
from metahpo.fewshot.transfer import time_to_threshold, transfer_data
from metahpo.models import FAMILIES
from metahpo.models.conv4 import Conv4Options

CPU = torch.device("cpu")


# --- pools and data dirs --------------------------------------------------------------------------


def id_pool(classes: int = 8, per_class: int = 6, side: int = 4) -> ClassPool:
    """Row r's image is r plus a position ramp below 1: floor(min) gives the row back under any rotation,
    and the ramp tells the rotations apart. Classes interleave (row r is class r % classes)."""
    rows = classes * per_class
    ramp = torch.arange(side * side, dtype=torch.float32).reshape(side, side) / (side * side)
    images = (torch.arange(rows, dtype=torch.float32)[:, None, None, None] + ramp).contiguous()
    names = [f"c{c}" for c in range(classes)]
    return ClassPool(images, np.arange(rows) % classes, names, [f"g{c // 2}" for c in range(classes)], ["ids"] * classes)


def row_ids(images: torch.Tensor) -> np.ndarray:
    return images.flatten(1).min(1).values.floor().long().numpy()


def signal_pool(classes: int, per_class: int, seed: int, side: int = 8) -> ClassPool:
    """Channel 0: a fixed random pattern per class (+ small noise); channels 1-2: fresh uniform noise per
    image, as strong as the signal. New classes bring new patterns, but the task family shares one fact
    (only channel 0 matters) that a few support-set steps from a random init cannot find and a
    meta-learned init can."""
    g = torch.Generator().manual_seed(seed)
    patterns = torch.rand(classes, 1, side, side, generator=g)
    signal = patterns.repeat_interleave(per_class, 0) + 0.05 * torch.randn(classes * per_class, 1, side, side, generator=g)
    noise = torch.rand(classes * per_class, 2, side, side, generator=g)
    names = [f"k{c}" for c in range(classes)]
    return ClassPool(torch.cat([signal, noise], 1), np.repeat(np.arange(classes), per_class), names,
                     [""] * classes, ["signal"] * classes)  # fmt: skip


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fewshot") / "digits"
    prepare_dataset("digits", DatasetParams(source="digits"), DownloadParams(), 0, out)
    return out


@pytest.fixture(scope="module")
def grouped_dir(tmp_path_factory) -> Path:
    """6 classes of random 10x10 images in 3 alphabets (2 classes each), prepared with a group column."""
    import PIL.Image

    rng = np.random.default_rng(0)
    labels = [i % 6 for i in range(60)]
    raw = datasets.Dataset.from_dict(
        {"img": [PIL.Image.fromarray(rng.integers(0, 256, (10, 10), dtype=np.uint8)) for _ in labels],
         "alphabet": [y // 2 for y in labels], "y": labels},
        features=datasets.Features(img=datasets.Image(), alphabet=datasets.ClassLabel(names=["greek", "latin", "runic"]),
                                   y=datasets.ClassLabel(names=[f"ch{i}" for i in range(6)])),
    )  # fmt: skip
    out = tmp_path_factory.mktemp("fewshot") / "grouped"
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(DATASETS._entries, "tiny_grouped", sources.BundledSource(lambda: datasets.DatasetDict({"train": raw}), ""))
        prepare_dataset("tiny_grouped", DatasetParams(source="tiny_grouped", columns={"label": "y", "group": "alphabet"}),
                        DownloadParams(), 0, out)  # fmt: skip
    return out


@pytest.fixture(scope="module")
def digits_pool(digits_dir) -> ClassPool:
    return load_pool({"digits": digits_dir}, None)


def synthetic_episode(ways: int, shots: int, queries: int, seed: int, channels: int = 1, side: int = 8) -> Episode:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(ways)
    return Episode(torch.rand(ways * shots, channels, side, side, generator=g), labels.repeat_interleave(shots),
                   torch.rand(ways * queries, channels, side, side, generator=g), labels.repeat_interleave(queries))  # fmt: skip


def tiny_body(seed: int = 0, channels: int = 1, filters: int = 4) -> Conv4:
    return new_body(channels, filters, seed, CPU)


# --- the inner loop and meta-gradients, by hand ------------------------------------------------------


def test_sgd_steps_meta_gradient_matches_the_closed_form_of_linear_regression():
    # L(w) = ||X w - y||^2 / (2n): gradient H w - X^T y / n with H = X^T X / n, so one step from w is
    # w' = w - lr g_s(w), dw'/dw = I - lr H_s, and the MAML meta-gradient is (I - lr H_s) g_q(w')
    g = torch.Generator().manual_seed(0)
    xs, ys = torch.randn(6, 3, generator=g, dtype=torch.float64), torch.randn(6, generator=g, dtype=torch.float64)
    xq, yq = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(5, generator=g, dtype=torch.float64)
    w0, lr = torch.randn(3, generator=g, dtype=torch.float64), 0.3

    def loss(x, y):
        return lambda p: (x @ p["w"] - y).pow(2).sum() / (2 * len(y))

    def grad(x, y, w):
        return x.T @ (x @ w - y) / len(y)

    h_support = xs.T @ xs / len(ys)
    jacobian = torch.eye(3, dtype=torch.float64) - lr * h_support
    for steps in (1, 2):
        adapted_w = w0.clone()
        for _ in range(steps):
            adapted_w = adapted_w - lr * grad(xs, ys, adapted_w)
        meta_grads = {}
        for second_order in (True, False):
            w = w0.clone().requires_grad_()
            seen = []
            adapted = sgd_steps(loss(xs, ys), {"w": w}, ["w"], steps, lambda name: lr, create_graph=second_order,
                                on_step=lambda step, p: seen.append(step))  # fmt: skip
            assert seen == list(range(1, steps + 1))
            assert torch.allclose(adapted["w"].detach(), adapted_w)
            (meta_grads[second_order],) = torch.autograd.grad(loss(xq, yq)(adapted), [w])
        second = torch.linalg.matrix_power(jacobian, steps) @ grad(xq, yq, adapted_w)
        assert torch.allclose(meta_grads[True], second)
        assert torch.allclose(meta_grads[False], grad(xq, yq, adapted_w))  # first order: dw'/dw taken as I
        assert not torch.allclose(meta_grads[True], meta_grads[False], atol=1e-3)


def test_sgd_steps_detach_cuts_adaptation_from_the_init():
    w = torch.ones(2, requires_grad=True)
    adapted = sgd_steps(lambda p: p["w"].pow(2).sum(), {"w": w}, ["w"], 2, lambda name: 0.25, create_graph=False, detach=True)
    assert torch.equal(adapted["w"].detach(), torch.full((2,), 0.25))  # 1 -> 0.5 -> 0.25
    assert adapted["w"].requires_grad and adapted["w"].grad_fn is None
    assert torch.equal(w.detach(), torch.ones(2))  # the init is not touched


def test_maml_and_anil_coincide_at_a_zero_head_with_one_inner_step():
    # docs/ARCHITECTURE.md: with one inner step MAML and ANIL coincide (the body's gradient is zero while
    # the head is zero); with two they do not
    body = tiny_body(seed=1)
    episode = synthetic_episode(ways=3, shots=2, queries=2, seed=1)
    maml, anil = METHODS.get("maml"), METHODS.get("anil")

    params = {**dict(body.named_parameters()), **zero_head(3, body.feature_dim(8), CPU)}
    support_loss = F.cross_entropy(linear_logits(forward(body, params, episode.support_x), params), episode.support_y)
    body_grads = torch.autograd.grad(support_loss, list(body.parameters()))
    assert all(torch.count_nonzero(g) == 0 for g in body_grads)

    results = {}
    for steps in (1, 2):
        inner = Inner(lr=0.4, train_steps=steps, steps=steps)
        for method in (maml, anil):
            state = method.init_state(body, inner)
            results[method.name, steps] = method.outer_gradient(body, state, episode, inner)
    for name in ("maml", "anil"):
        assert set(results[name, 1][1]) == {n for n, _ in body.named_parameters()}
    (loss_maml, grads_maml), (loss_anil, grads_anil) = results["maml", 1], results["anil", 1]
    assert loss_maml == pytest.approx(loss_anil, rel=1e-6)
    assert any(g.abs().max() > 1e-4 for g in grads_maml.values())  # a real gradient, not two zeros
    for name in grads_maml:
        assert torch.allclose(grads_maml[name], grads_anil[name], rtol=1e-4, atol=1e-7), name
    (loss_maml, grads_maml), (loss_anil, grads_anil) = results["maml", 2], results["anil", 2]
    assert loss_maml != pytest.approx(loss_anil, rel=1e-4)
    assert any(not torch.allclose(grads_maml[n], grads_anil[n], rtol=1e-3, atol=1e-6) for n in grads_maml)


def test_metasgd_at_its_initial_rates_is_maml_and_learns_the_rates():
    body = tiny_body(seed=2)
    episode = synthetic_episode(ways=3, shots=2, queries=2, seed=2)
    inner = Inner(lr=0.3, train_steps=2, steps=2)
    maml, metasgd = METHODS.get("maml"), METHODS.get("metasgd")
    loss_maml, grads_maml = maml.outer_gradient(body, maml.init_state(body, inner), episode, inner)
    state = metasgd.init_state(body, inner)
    assert {n for n in state if n.startswith("lr.")} == {f"lr.{n}" for n, _ in body.named_parameters()} | {"lr.head"}
    assert all(torch.all(v == 0.3) for n, v in state.items() if n.startswith("lr."))
    loss_sgd, grads_sgd = metasgd.outer_gradient(body, state, episode, inner)
    assert loss_sgd == pytest.approx(loss_maml, rel=1e-6)
    for name in grads_maml:
        assert torch.allclose(grads_sgd[name], grads_maml[name], rtol=1e-4, atol=1e-7), name
    assert grads_sgd["lr.head"].abs() > 0  # the head's rate gets a meta-gradient
    assert any(torch.count_nonzero(grads_sgd[f"lr.{n}"]) > 0 for n in grads_maml)


def test_reptile_gradient_is_init_minus_adapted_and_zero_after_one_step():
    body = tiny_body(seed=3)
    episode = synthetic_episode(ways=3, shots=2, queries=2, seed=3)
    reptile = METHODS.get("reptile")
    for steps, moves in ((1, False), (3, True)):
        inner = Inner(lr=0.5, train_steps=steps, steps=steps)
        state = reptile.init_state(body, inner)
        before = {n: v.detach().clone() for n, v in state.items()}
        loss, grads = reptile.outer_gradient(body, state, episode, inner)
        assert all(torch.equal(state[n].detach(), before[n]) for n in state)  # the state itself is not stepped
        # one step from a zero head leaves the body where it was (its gradient is zero there)
        assert any(torch.count_nonzero(g) > 0 for g in grads.values()) == moves
        assert loss < np.log(3)  # after adaptation: below the zero head's log(ways)


# --- episodes --------------------------------------------------------------------------------------


def test_sampler_is_seeded_per_episode_and_independent_of_draw_order():
    pool = id_pool()
    classes = np.array([0, 2, 4, 5, 7])
    sampler = EpisodeSampler(pool, classes, ways=3, shots=2, queries=2, seed=7)

    def same(a: Episode, b: Episode) -> bool:
        return all(torch.equal(x, y) for x, y in zip(vars(a).values(), vars(b).values()))

    first = sampler.episode(3)
    assert same(first, sampler.episode(3))
    assert same(first, EpisodeSampler(pool, classes, 3, 2, 2, seed=7).episode(3))
    assert same(first, list(sampler.episodes(2, start=2))[1])
    assert not same(first, sampler.episode(4))
    assert not same(first, EpisodeSampler(pool, classes, 3, 2, 2, seed=8).episode(3))


def test_episodes_have_disjoint_support_and_query_from_the_split_classes_only():
    pool = id_pool()
    classes = np.array([0, 2, 4, 5, 7])
    sampler = EpisodeSampler(pool, classes, ways=3, shots=2, queries=2, seed=0)
    for episode in sampler.episodes(20):
        assert episode.ways == 3
        assert torch.equal(episode.support_y, torch.tensor([0, 0, 1, 1, 2, 2]))
        assert torch.equal(episode.query_y, torch.tensor([0, 0, 1, 1, 2, 2]))
        support, query = row_ids(episode.support_x), row_ids(episode.query_x)
        assert not set(support) & set(query) and len(set(support)) == 6 and len(set(query)) == 6
        label_class = {}
        for rows, labels in ((support, episode.support_y), (query, episode.query_y)):
            for row, label in zip(rows, labels.tolist()):
                assert pool.classes[row] in classes
                assert label_class.setdefault(label, pool.classes[row]) == pool.classes[row]  # one class per label
        assert len(set(label_class.values())) == 3


def test_rotations_make_each_quarter_turn_a_class():
    pool = id_pool()
    # one class and rotations: exactly four candidates, so a 4-way episode holds its four turns
    sampler = EpisodeSampler(pool, np.array([3]), ways=4, shots=1, queries=2, seed=0, rotations=True)
    episode = sampler.episode(0)
    turns_of_label = {}
    for images, labels in ((episode.support_x, episode.support_y), (episode.query_x, episode.query_y)):
        for image, label, row in zip(images, labels.tolist(), row_ids(images)):
            assert pool.classes[row] == 3
            (turns,) = [k for k in range(4) if torch.equal(image, torch.rot90(pool.images[row], k, dims=(1, 2)))]
            assert turns_of_label.setdefault(label, turns) == turns
    assert sorted(turns_of_label.values()) == [0, 1, 2, 3]
    with pytest.raises(DataError, match="the train split has 1 classes, fewer than 4 ways"):
        EpisodeSampler(pool, np.array([3]), ways=4, shots=1, queries=2, seed=0)


def test_sampler_errors_name_the_split_and_the_shortfall():
    pool = id_pool(per_class=6)
    with pytest.raises(DataError, match="the test split has 2 classes, fewer than 3 ways"):
        EpisodeSampler(pool, np.array([0, 1]), ways=3, shots=1, queries=1, seed=0, split="test")
    with pytest.raises(DataError, match=r"2 validation classes \(e.g. 'c0'\) have fewer than shots \+ queries = 7 images"):
        EpisodeSampler(pool, np.array([0, 1]), ways=2, shots=2, queries=5, seed=0, split="validation")
    EpisodeSampler(pool, np.array([0, 1]), ways=2, shots=2, queries=4, seed=0)  # 6 images: just enough


def test_load_pool_reads_every_split_and_resizes(digits_dir, grouped_dir, digits_pool):
    assert digits_pool.images.shape == (1797, 1, 8, 8)  # train + validation + test: splits are by class here
    assert digits_pool.class_names == [str(d) for d in range(10)] and set(digits_pool.class_datasets) == {"digits"}
    assert 0 <= digits_pool.images.min() and digits_pool.images.max() == 1
    assert len(np.unique(digits_pool.classes)) == 10
    with pytest.raises(DataError, match=r"image sizes differ .*set fewshot.image_size"):
        load_pool({"grouped": grouped_dir, "digits": digits_dir}, None)
    both = load_pool({"grouped": grouped_dir, "digits": digits_dir}, 8)
    assert both.images.shape == (60 + 1797, 1, 8, 8)
    assert both.class_names == [f"ch{i}" for i in range(6)] + [str(d) for d in range(10)]
    assert both.class_groups[:6] == ["greek", "greek", "latin", "latin", "runic", "runic"] and set(both.class_groups[6:]) == {""}
    assert both.class_datasets == ["grouped"] * 6 + ["digits"] * 10
    assert np.bincount(both.classes).tolist() == [10] * 6 + np.bincount(digits_pool.classes).tolist()


def test_load_pool_refuses_a_tabular_dataset(tmp_path):
    prepare_dataset("wine", DatasetParams(source="wine"), DownloadParams(), 0, tmp_path / "wine")
    with pytest.raises(DataError, match="'wine' is tabular data; few-shot episodes need an image dataset"):
        load_pool({"wine": tmp_path / "wine"}, None)


def test_split_classes_by_class_group_and_dataset_are_disjoint(digits_dir, grouped_dir, digits_pool):
    def check_partition(splits, count):
        together = np.concatenate([splits[s] for s in ("train", "validation", "test")])
        assert sorted(together) == list(range(count))

    by_class = split_classes(digits_pool, "class", ["0", "1"], ["2", "3"])
    check_partition(by_class, 10)
    assert by_class["validation"].tolist() == [0, 1] and by_class["test"].tolist() == [2, 3]
    assert by_class["train"].tolist() == [4, 5, 6, 7, 8, 9]

    pool = load_pool({"grouped": grouped_dir, "digits": digits_dir}, 8)
    by_group = split_classes(pool, "group", ["latin"], ["runic"])
    check_partition(by_group, 16)
    assert by_group["validation"].tolist() == [2, 3] and by_group["test"].tolist() == [4, 5]
    assert by_group["train"].tolist() == [0, 1, *range(6, 16)]  # greek and the group-less digits

    by_dataset = split_classes(pool, "dataset", [], ["grouped"])
    check_partition(by_dataset, 16)
    assert by_dataset["test"].tolist() == list(range(6)) and len(by_dataset["validation"]) == 0


def test_split_classes_errors_name_the_split_and_the_valid_names(digits_pool):
    with pytest.raises(DataError, match=r"fewshot.split.test: no class named '11', 'x'; valid names: 0, 1, 2, .*, 9$"):
        split_classes(digits_pool, "class", ["0"], ["11", "x"])
    with pytest.raises(DataError, match="fewshot.split.validation: no dataset named 'mnist'; valid names: digits"):
        split_classes(digits_pool, "dataset", ["mnist"], [])
    with pytest.raises(DataError, match=r"\['3'\] are in both validation and test; meta splits must be disjoint"):
        split_classes(digits_pool, "class", ["2", "3"], ["3"])


# --- episode tables ----------------------------------------------------------------------------------


def assert_same_episodes(read: list[Episode], written: list[Episode]) -> None:
    assert len(read) == len(written)
    for a, b in zip(read, written):
        for name in ("support_x", "support_y", "query_x", "query_y"):
            assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_episode_table_round_trip_is_exact_for_8_bit_images(tmp_path, digits_pool):
    sampler = EpisodeSampler(digits_pool, np.arange(10), ways=3, shots=2, queries=3, seed=0)
    written = list(sampler.episodes(3))
    write_episode_table(tmp_path / "gray.parquet", written)
    table = pd.read_parquet(tmp_path / "gray.parquet")
    assert list(table.columns) == ["episode", "role", "image", "label"] and len(table) == 3 * (6 + 9)
    assert_same_episodes(read_episode_table(tmp_path / "gray.parquet", 8, 1), written)

    # read as RGB: three equal channels; at another size: the same area resize as the pool's
    rgb = read_episode_table(tmp_path / "gray.parquet", None, 3)
    assert torch.equal(rgb[0].support_x, written[0].support_x.expand(-1, 3, -1, -1))
    small = read_episode_table(tmp_path / "gray.parquet", 4, 1)
    assert torch.allclose(small[1].query_x, resize(written[1].query_x, 4))

    g = torch.Generator().manual_seed(0)
    colour = [Episode(torch.randint(0, 256, (4, 3, 6, 6), generator=g) / 255.0, torch.tensor([0, 0, 1, 1]),
                      torch.randint(0, 256, (2, 3, 6, 6), generator=g) / 255.0, torch.tensor([1, 0]))]  # fmt: skip
    write_episode_table(tmp_path / "rgb.parquet", colour)
    assert_same_episodes(read_episode_table(tmp_path / "rgb.parquet", None, 3), colour)

    # images between the 8-bit levels go to the nearest one; outside [0, 1] they are clamped
    levels = torch.tensor([0.4, 0.6, 254.6, 300.0, -20.0]) / 255
    between = Episode(levels.reshape(1, 1, 1, 5), torch.tensor([0]), levels.reshape(1, 1, 1, 5), torch.tensor([0]))
    write_episode_table(tmp_path / "between.parquet", [between])
    (read,) = read_episode_table(tmp_path / "between.parquet", None, 1)
    assert torch.equal(read.support_x.flatten(), torch.tensor([0, 1, 255, 255, 0]) / 255.0)


@pytest.fixture
def table_rows(tmp_path) -> pd.DataFrame:
    """The rows of a valid 2-episode, 2-way table, to corrupt."""
    write_episode_table(tmp_path / "good.parquet", [synthetic_episode(2, 2, 1, seed=s, side=6) for s in (0, 1)])
    return pd.read_parquet(tmp_path / "good.parquet")


def test_episode_table_errors_name_the_episode_and_the_column(tmp_path, table_rows):
    import PIL.Image

    def read(frame: pd.DataFrame):
        path = tmp_path / "bad.parquet"
        frame.to_parquet(path, index=False)
        return read_episode_table(path, 6, 1)

    assert len(read(table_rows)) == 2
    with pytest.raises(DataError, match="missing.parquet: no such episode table"):
        read_episode_table(tmp_path / "missing.parquet", 6, 1)
    (tmp_path / "text.parquet").write_text("episode,role\n")
    with pytest.raises(DataError, match="text.parquet: not a Parquet file"):
        read_episode_table(tmp_path / "text.parquet", 6, 1)
    with pytest.raises(DataError, match="missing column[(]s[)] label; an episode table has episode, role, image, label"):
        read(table_rows.drop(columns=["label"]))
    with pytest.raises(DataError, match=r"column role holds \['train'\]; roles are support and query"):
        read(table_rows.replace({"role": {"query": "train"}}))
    with pytest.raises(DataError, match=r"episode 1 has no query set \(column role\)"):
        read(table_rows[~((table_rows["episode"] == 1) & (table_rows["role"] == "query"))])
    bad_query = table_rows.copy()
    bad_query.loc[(bad_query["episode"] == 0) & (bad_query["role"] == "query"), "label"] = 5
    with pytest.raises(DataError, match="episode 0 has query labels .column label. that its support set lacks"):
        read(bad_query)
    with pytest.raises(DataError, match=r"episode 0: support labels \(column label\) must be 0..N-1, got \[1, 2\]"):
        read(table_rows.assign(label=table_rows["label"] + 1))
    not_image = table_rows.copy()
    not_image.loc[1, "image"] = b"not a png"
    with pytest.raises(DataError, match="episode 0: column image holds bytes that are not an image"):
        read(not_image)
    mixed = table_rows.copy()
    big = io.BytesIO()
    PIL.Image.new("L", (7, 7)).save(big, format="PNG")
    mixed.loc[0, "image"] = big.getvalue()
    with pytest.raises(DataError, match="episode 0: images in column image differ in size"):
        read(mixed)
    query_rows = (table_rows["episode"] == 1) & (table_rows["role"] == "query")
    mixed_roles = table_rows.copy()
    mixed_roles.loc[query_rows, "image"] = big.getvalue()  # every query image 7x7, the support 6x6
    with pytest.raises(DataError, match="episode 1: images in column image differ in size between support and query"):
        mixed_roles.to_parquet(tmp_path / "bad.parquet", index=False)
        read_episode_table(tmp_path / "bad.parquet", None, 1)  # no resize: the sizes are the table's own
    with pytest.raises(DataError, match="the table has no rows"):
        read(table_rows.iloc[:0])


# --- evaluation --------------------------------------------------------------------------------------


def test_macro_f1_matches_scikit_learn_with_a_class_never_predicted():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    for _ in range(20):
        ways = int(rng.integers(2, 7))
        labels = rng.permutation(np.arange(40) % ways)  # every class present, as in a query set
        predictions = rng.integers(0, ways - 1, size=40)  # the last class is never predicted
        ours = macro_f1(torch.from_numpy(predictions), torch.from_numpy(labels), ways)
        assert ours == pytest.approx(f1_score(labels, predictions, average="macro"), abs=1e-12)
    # a class neither present nor predicted scores 0 and still counts in the mean (the docstring's rule)
    labels, predictions = np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1])
    ours = macro_f1(torch.from_numpy(predictions), torch.from_numpy(labels), 3)
    theirs = f1_score(labels, predictions, average="macro", labels=[0, 1, 2], zero_division=0)
    assert ours == pytest.approx(theirs) and ours == pytest.approx((2 / 3 + 0.8 + 0) / 3)


def test_summarize_means_intervals_and_steps_to_threshold():
    values = np.array([0.2, 0.6, 0.7, 0.5])
    assert interval(values) == pytest.approx(Z_95 * np.std(values, ddof=1) / 2)
    assert interval(np.array([0.3])) == 0.0
    rows = [{"method": "m", "setting": "s", "episode": e, "step": step, "accuracy": acc, "macro_f1": acc / 2,
             "seconds": 0.1 * step} for e, accs in enumerate([(0.2, 0.6, 0.9), (0.4, 0.8, 0.9)])
            for step, acc in enumerate(accs)]  # fmt: skip
    curves, table = summarize(pd.DataFrame(rows), threshold=0.7)
    assert curves["accuracy"].tolist() == pytest.approx([0.3, 0.7, 0.9])
    assert curves["accuracy_ci"].tolist() == pytest.approx([interval(np.array(p)) for p in ([0.2, 0.4], [0.6, 0.8], [0.9, 0.9])])
    (row,) = table.to_dict("records")
    assert row["steps"] == 2 and row["episodes"] == 2 and row["accuracy"] == pytest.approx(0.9)
    assert row["macro_f1"] == pytest.approx(0.45) and row["accuracy_ci"] == 0.0
    assert row["steps_to_threshold"] == 1 and row["seconds_to_threshold"] == pytest.approx(0.1)
    assert np.isnan(summarize(pd.DataFrame(rows), threshold=0.95)[1]["steps_to_threshold"].iloc[0])


def test_scoring_starts_at_chance_and_protonet_is_flat():
    body = tiny_body(seed=4)
    state = {n: p.detach() for n, p in body.named_parameters()}
    episode = synthetic_episode(ways=4, shots=2, queries=3, seed=4)
    inner = Inner(lr=0.5, train_steps=1, steps=3)
    frame = evaluate_method(METHODS.get("fomaml"), lambda i: body, lambda i: state, [episode], inner, CPU)
    assert frame["step"].tolist() == [0, 1, 2, 3]
    assert frame["accuracy"].iloc[0] == 0.25  # a zero head ties every class: argmax 0, a quarter of the queries
    assert (frame["seconds"].diff().dropna() > 0).all()
    proto = evaluate_method(METHODS.get("protonet"), lambda i: body, lambda i: state, [episode], inner, CPU)
    assert proto["accuracy"].nunique() == 1 and proto["macro_f1"].nunique() == 1


def test_meta_learned_inits_beat_random_init_beyond_the_intervals(tmp_path):
    """The signal_pool family: meta-train on 60 classes, test on 20 new ones (new patterns, same structure)."""
    pool = signal_pool(classes=80, per_class=10, seed=0)
    train = EpisodeSampler(pool, np.arange(60), ways=5, shots=1, queries=5, seed=1)
    test = EpisodeSampler(pool, np.arange(60, 80), ways=5, shots=1, queries=5, seed=2, split="test")
    inner = Inner(lr=0.5, train_steps=2, steps=2)  # Reptile needs 2 steps: one from a zero head leaves the body
    loop = LoopSettings(iterations=30, meta_batch=4, meta_lr=0.02, validate_every=10**6, validation_episodes=0,
                        checkpoint_every=10**6)  # fmt: skip
    frames = []
    for name in ("maml", "fomaml", "reptile", "random_init"):
        method = METHODS.get(name)
        if method.init_name is None:  # as fewshot_eval does: a fresh seeded random body per episode
            bodies = {}

            def body_for(i):
                bodies[i] = new_body(3, 8, 1000 + i, CPU)
                return bodies[i]

            def state_for(i):
                return dict(bodies[i].named_parameters())
        else:
            trained = train_init(method, pool, train, None, inner, loop, 8, 0, CPU, tmp_path / f"{name}.ckpt", False)
            body = new_body(3, 8, 0, CPU)

            def body_for(i, body=body):
                return body

            def state_for(i, state=trained.state):
                return state
        frame = evaluate_method(method, body_for, state_for, test.episodes(60), inner, CPU)
        frames.append(frame.assign(method=name, setting="5-way 1-shot"))
    _, table = summarize(pd.concat(frames), threshold=0.9)
    rows = table.set_index("method")
    assert (rows["episodes"] == 60).all()
    baseline = rows.loc["random_init"]
    for name in ("maml", "fomaml", "reptile"):
        # the 95% intervals do not overlap
        margin = rows.loc[name, "accuracy"] - baseline["accuracy"]
        assert margin > rows.loc[name, "accuracy_ci"] + baseline["accuracy_ci"], rows


# --- meta-training resume ------------------------------------------------------------------------------


class Interrupted(Exception):
    pass


@pytest.mark.parametrize("method_name", ["fomaml", "pretrain_finetune"])
def test_train_init_resumes_a_killed_run_to_the_same_weights(tmp_path, monkeypatch, method_name):
    pool = signal_pool(classes=12, per_class=6, seed=5)
    train = EpisodeSampler(pool, np.arange(8), ways=3, shots=1, queries=2, seed=1)
    validation = EpisodeSampler(pool, np.arange(8, 12), ways=3, shots=1, queries=2, seed=2, split="validation")
    inner = Inner(lr=0.5, train_steps=2, steps=2)
    loop = LoopSettings(iterations=6, meta_batch=2, meta_lr=0.01, validate_every=2, validation_episodes=2,
                        checkpoint_every=3, batch_size=16)  # fmt: skip
    method = METHODS.get(method_name)

    def run(checkpoint: Path):
        return train_init(method, pool, train, validation, inner, loop, 4, 0, CPU, checkpoint, False)

    # episode i of the outer loop's step t is i = t * meta_batch + j: record which ones each run draws
    drawn, real_episode = [], train.episode
    monkeypatch.setattr(train, "episode", lambda index: drawn.append(index) or real_episode(index))
    straight = run(tmp_path / "straight.ckpt")
    if method.training == "episodic":
        assert drawn == list(range(12))

    # a kill after the checkpoint at step 3 and the validation at step 4: step 4 is lost and redone
    real_validate, calls = meta_train.validate, []

    def validate(*args, **kwargs):
        calls.append(len(calls))
        if interrupt and len(calls) == 2:
            raise Interrupted
        return real_validate(*args, **kwargs)

    monkeypatch.setattr(meta_train, "validate", validate)
    interrupt = True
    with pytest.raises(Interrupted):
        run(tmp_path / "resumed.ckpt")
    interrupt, calls[:], drawn[:] = False, [], []
    resumed = run(tmp_path / "resumed.ckpt")
    assert len(calls) == 2  # validated at steps 4 and 6 only: it resumed from step 3, not from scratch
    if method.training == "episodic":
        assert drawn == list(range(6, 12))  # steps 4..6, the same episodes the straight run drew there

    without_seconds = [[{k: v for k, v in r.items() if k != "seconds"} for r in t.history] for t in (straight, resumed)]
    assert without_seconds[0] == without_seconds[1]
    assert [r["iteration"] for r in resumed.history] == [1, 2, 3, 4, 5, 6]
    assert [("val_accuracy" in r) for r in resumed.history] == [False, True, False, True, False, True]
    assert resumed.best_iteration == straight.best_iteration
    assert set(resumed.state) == set(straight.state) and not any(n.startswith("head.") for n in resumed.state)
    assert all(torch.equal(resumed.state[n], straight.state[n]) for n in straight.state)
    # the last checkpoints (state, best state, Adam's moments) agree tensor for tensor
    final = [load_file(str(tmp_path / f"{name}.ckpt")) for name in ("straight", "resumed")]
    assert set(final[0]) == set(final[1]) and any(k.startswith("adam/") for k in final[0])
    assert all(torch.equal(final[0][k], final[1][k]) for k in final[0])
    # and training moved the init: a resume that skipped the work would fail here
    untrained = {n: p for n, p in new_body(3, 4, 0, CPU).named_parameters()}
    assert any(not torch.equal(straight.state[n], untrained[n].detach()) for n in untrained)


def test_a_checkpoint_of_another_layout_starts_over(tmp_path):
    pool = signal_pool(classes=8, per_class=4, seed=6)
    train = EpisodeSampler(pool, np.arange(8), ways=2, shots=1, queries=1, seed=1)
    inner = Inner(lr=0.5, train_steps=1, steps=1)
    loop = LoopSettings(iterations=2, meta_batch=1, meta_lr=0.01, validate_every=1, validation_episodes=1, checkpoint_every=1)
    fresh = train_init(METHODS.get("metasgd"), pool, train, None, inner, loop, 4, 0, CPU, tmp_path / "a.ckpt", False)
    train_init(METHODS.get("fomaml"), pool, train, None, inner, loop, 4, 0, CPU, tmp_path / "b.ckpt", False)
    # metasgd's state has lr.* tensors fomaml's checkpoint lacks: it must not resume from it
    again = train_init(METHODS.get("metasgd"), pool, train, None, inner, loop, 4, 0, CPU, tmp_path / "b.ckpt", False)
    assert [r["iteration"] for r in again.history] == [1, 2]
    assert all(torch.equal(again.state[n], fresh.state[n]) for n in fresh.state)


# --- saved inits and the conv4 family --------------------------------------------------------------------


def init_config(**overrides) -> dict:
    """The config keys the meta_init stage writes."""
    return {"init": "fomaml", "method": "fomaml", "training": "episodic", "in_channels": 1, "image_size": 8,
            "filters": 4, "inner_lr": 0.5, "inner_steps": 1, "steps": 2, "seconds": 1.5, "peak_memory_mb": 10.0,
            "best_iteration": 4, "iterations": 4, "device": "cpu",
            "history": [{"iteration": 1, "loss": 1.0, "seconds": 0.1}], **overrides}  # fmt: skip


def saved_body_state(seed: int = 11, filters: int = 4) -> dict[str, torch.Tensor]:
    return {n: p.detach() for n, p in new_body(1, filters, seed, CPU).named_parameters()}


def test_save_init_and_load_init_round_trip(tmp_path):
    state = {**saved_body_state(), "lr.head": torch.tensor(0.3)}
    path = save_init(tmp_path, "fomaml", state, init_config())
    assert path == tmp_path / "fomaml.safetensors"
    loaded, config = load_init(path)
    assert set(loaded) == set(state) and all(torch.equal(loaded[n], state[n]) for n in state)
    expected = {k: v for k, v in init_config().items() if k != "history"}
    assert config == {"format": 1, **expected}  # the history stays out of the tensor file's metadata
    assert json.loads((tmp_path / "fomaml.json").read_text()) == {"format": 1, **init_config()}


def test_load_init_errors_say_what_the_file_is_not(tmp_path):
    with pytest.raises(MetahpoError, match="nope.safetensors: no such initialization; the meta_init stage writes them"):
        load_init(tmp_path / "nope.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 32)
    with pytest.raises(MetahpoError, match="junk.safetensors: not a safetensors file"):
        load_init(tmp_path / "junk.safetensors")
    save_file({"w": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(MetahpoError, match=r"a safetensors file without a metahpo initialization config \(metahpo_init\)"):
        load_init(tmp_path / "plain.safetensors")
    save_file({"w": torch.zeros(2)}, str(tmp_path / "future.safetensors"), metadata={"metahpo_init": json.dumps({"format": 9})})
    with pytest.raises(MetahpoError, match="initialization format 9, this metahpo reads 1"):
        load_init(tmp_path / "future.safetensors")


def test_conv4_family_starts_from_a_meta_init(tmp_path, digits_dir):
    state = saved_body_state()
    path = save_init(tmp_path, "fomaml", state, init_config(image_size=12))
    family = FAMILIES.get("conv4")
    options = Conv4Options(init="meta", init_path=str(path))
    data, info = load_prepared(digits_dir)
    prepared = family.prepare(data, info, options)
    assert prepared.train.inputs["x"].shape[1:] == (1, 12, 12)  # the init's image size, not the data's 8
    model = family.build({"lr": 0.01, "batch_size": 8}, prepared, options)
    body = dict(model.body.named_parameters())
    assert set(body) == set(state) and all(torch.equal(body[n].detach(), state[n]) for n in state)
    assert model.head.out_features == 10 and model.head.in_features == 4  # 12 -> 6 -> 3 -> 2 -> 1 pixels
    assert torch.count_nonzero(model.head.weight) == 0 and torch.count_nonzero(model.head.bias) == 0
    # running statistics start fresh: the few-shot body has none
    norms = [m for m in model.body.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(m.track_running_stats and torch.equal(m.running_var, torch.ones_like(m.running_var)) for m in norms)

    random_model = family.build({}, prepared, Conv4Options(init="random", filters=4))
    assert not torch.equal(random_model.body.blocks[0][0].weight, body["blocks.0.0.weight"])


def test_conv4_meta_init_errors(tmp_path, digits_dir):
    family = FAMILIES.get("conv4")
    data, info = load_prepared(digits_dir)
    with pytest.raises(ValueError, match="init: meta needs init_path"):
        Conv4Options(init="meta")
    missing = Conv4Options(init="meta", init_path=str(tmp_path / "gone.safetensors"))
    with pytest.raises(MetahpoError, match="gone.safetensors: no such initialization"):
        family.prepare(data, info, missing)
    rgb = save_init(tmp_path, "rgb", saved_body_state(), init_config(in_channels=3))
    prepared = family.prepare(data, info, Conv4Options(init="meta", init_path=str(rgb)))
    with pytest.raises(ValueError, match="rgb.safetensors was trained on 3-channel images, the data has 1"):
        family.build({}, prepared, Conv4Options(init="meta", init_path=str(rgb)))
    partial = {n: v for n, v in saved_body_state().items() if n != "blocks.3.0.weight"}
    cut = save_init(tmp_path, "cut", partial, init_config())
    with pytest.raises(ValueError, match=r"the init does not fit this Conv-4 .*: missing \[.*'blocks.3.0.weight'.*\], unexpected \[\]"):
        family.build({}, prepared, Conv4Options(init="meta", init_path=str(cut)))
    narrow = save_init(tmp_path, "narrow", saved_body_state(), init_config(filters=8))
    with pytest.raises(ValueError, match=r"check its filters and in_channels.*shapes \(init vs model\) \['blocks.0.0.bias \(4,\) vs \(8,\)'"):
        family.build({}, family.prepare(data, info, Conv4Options(init="meta", init_path=str(narrow))),
                     Conv4Options(init="meta", init_path=str(narrow)))


def test_transfer_splits_each_class_and_trains_from_each_init(tmp_path):
    pool = id_pool(classes=8, per_class=10, side=8)
    classes = np.array([1, 4, 6])
    data = transfer_data(pool, classes, seed=0)
    again = transfer_data(pool, classes, seed=0)
    assert data.num_classes == 3
    ids = {s: row_ids(getattr(data, s).inputs["x"]) for s in ("train", "validation", "test")}
    assert [len(v) for v in ids.values()] == [18, 6, 6]  # 60/20/20 of 10 images, per class
    assert not (set(ids["train"]) & set(ids["validation"]) or set(ids["train"]) & set(ids["test"])
                or set(ids["validation"]) & set(ids["test"]))  # fmt: skip
    for split, rows in ids.items():
        labels = getattr(data, split).labels.numpy()
        assert (classes[labels] == pool.classes[rows]).all()  # label i is classes[i]
        assert torch.equal(getattr(again, split).inputs["x"], getattr(data, split).inputs["x"])

    save_init(tmp_path, "fomaml", saved_body_state(), init_config())
    settings = SimpleNamespace(lr=0.01, batch_size=8, epochs=2, threshold=0.0)
    result = time_to_threshold(pool, classes, settings, {"fomaml": "fomaml", "random_init": None}, tmp_path, 4, 0, CPU, "fp32")
    assert result["train_rows"] == 18 and result["steps_per_epoch"] == 3 and result["classes"] == 3
    for name, init in (("fomaml", "fomaml"), ("random_init", "random")):
        run = result["methods"][name]
        assert run["state"] == "ok" and run["init"] == init and len(run["val_accuracy"]) == 2
        assert run["epochs_to_threshold"] == 1 and run["steps_to_threshold"] == 3  # any accuracy reaches 0
        assert run["seconds_to_threshold"] == pytest.approx(run["seconds"][0])


# --- metahpo fewshot evaluate --------------------------------------------------------------------------


@pytest.fixture
def cli_files(tmp_path, digits_pool) -> dict[str, Path]:
    init = save_init(tmp_path, "fomaml", saved_body_state(), init_config())
    sampler = EpisodeSampler(digits_pool, np.arange(10), ways=3, shots=1, queries=3, seed=0)
    write_episode_table(tmp_path / "episodes.parquet", list(sampler.episodes(4)))
    return {"init": init, "episodes": tmp_path / "episodes.parquet", "out": tmp_path / "out.json"}


def test_cli_fewshot_evaluate_scores_an_init_on_a_table(cli_files, capsys):
    argv = ["fewshot", "evaluate", "--init", str(cli_files["init"]), "--episodes", str(cli_files["episodes"]),
            "--steps", "3", "--out", str(cli_files["out"]), "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "fomaml on 4 episodes of episodes.parquet: accuracy" in printed and "after 3 steps" in printed
    out = json.loads(cli_files["out"].read_text())
    (row,) = out["table"]
    assert row["method"] == "fomaml" and row["setting"] == "episodes.parquet" and row["episodes"] == 4 and row["steps"] == 3
    assert [c["step"] for c in out["curve"]] == [0, 1, 2, 3]  # --steps overrides the init's 2
    assert out["curve"][0]["accuracy"] == pytest.approx(1 / 3)  # the zero head before any step

    # the same numbers as scoring the table directly with the init's settings
    state, config = load_init(cli_files["init"])
    episodes = read_episode_table(cli_files["episodes"], config["image_size"], config["in_channels"])
    body = new_body(1, 4, 0, CPU)
    inner = Inner(lr=config["inner_lr"], train_steps=config["inner_steps"], steps=3)
    direct = evaluate_method(METHODS.get("fomaml"), lambda i: body, lambda i: state, episodes, inner, CPU)
    assert [c["accuracy"] for c in out["curve"]] == pytest.approx(direct.groupby("step")["accuracy"].mean().tolist())
    assert row["accuracy"] == pytest.approx(direct[direct["step"] == 3]["accuracy"].mean())

    # without --steps: the init's own (meta_init writes fewshot.evaluate.steps into it)
    assert main(argv[:argv.index("--steps")] + argv[argv.index("--steps") + 2:]) == 0
    assert [c["step"] for c in json.loads(cli_files["out"].read_text())["curve"]] == [0, 1, 2]


def test_cli_fewshot_evaluate_errors_exit_2_naming_the_problem(cli_files, tmp_path, capsys):
    base = ["fewshot", "evaluate", "--init", str(cli_files["init"]), "--out", str(cli_files["out"]), "--device", "cpu"]
    assert main([*base, "--episodes", str(tmp_path / "absent.parquet")]) == 2
    assert "absent.parquet: no such episode table" in capsys.readouterr().err
    assert main([*base, "--episodes", str(cli_files["episodes"]), "--steps", "-1"]) == 2
    assert "--steps must be 0 or more, got -1" in capsys.readouterr().err
    assert main([*base, "--episodes", str(cli_files["episodes"]), "--lr", "0"]) == 2  # 0 is not "the init's rate"
    assert "--lr must be above 0, got 0.0" in capsys.readouterr().err
    assert main([*base, "--episodes", str(cli_files["episodes"]), "--threshold", "90"]) == 2
    assert "--threshold is an accuracy in (0, 1], got 90.0" in capsys.readouterr().err
    assert main([*base, "--episodes", str(cli_files["episodes"]), "--method", "nope"]) == 2
    assert "unknown few-shot method 'nope'; valid names: anil" in capsys.readouterr().err
    assert not cli_files["out"].exists()
    with pytest.raises(SystemExit) as exit_info:  # argparse: --episodes is required
        main(["fewshot", "evaluate", "--init", str(cli_files["init"])])
    assert exit_info.value.code == 2 and "--episodes" in capsys.readouterr().err
