"""Episodes: N-way K-shot support and query sets from prepared image datasets, seeded and deterministic.

A ``ClassPool`` holds every image of the few-shot datasets (every split of each prepared dataset:
few-shot splits are by class, not by row), resized to one size. ``split_classes`` makes the
class-disjoint meta-train / meta-validation / meta-test sets by one of three rules: by class name,
by group (e.g. whole Omniglot alphabets), or by whole dataset (domains). ``EpisodeSampler`` draws
episode ``i`` from its own generator seeded by ``(seed, i)``, so an episode does not depend on how
many were drawn before it (a resumed run sees the same episodes). Fixed episode tables (Parquet:
``episode``, ``role``, ``image``, ``label``) are read and written by ``read_episode_table`` and
``write_episode_table``; the schema is in docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from metahpo.errors import DataError

SPLITS = ("train", "validation", "test")
ROLES = ("support", "query")
EPISODE_COLUMNS = ("episode", "role", "image", "label")
ROTATIONS = 4  # 0, 90, 180, 270 degrees: each a class of its own (the Omniglot convention)


@dataclass
class Episode:
    support_x: torch.Tensor  # float (ways * shots, C, H, W)
    support_y: torch.Tensor  # int64 in 0..ways-1
    query_x: torch.Tensor
    query_y: torch.Tensor

    @property
    def ways(self) -> int:
        return int(self.support_y.max()) + 1

    def to(self, device: torch.device) -> "Episode":
        return Episode(*(t.to(device) for t in (self.support_x, self.support_y, self.query_x, self.query_y)))


@dataclass
class ClassPool:
    """Every image of the few-shot datasets, one class index per image; classes are (dataset, label)."""

    images: torch.Tensor  # float32 (N, C, H, W) in [0, 1]
    classes: np.ndarray  # int64 (N,): index into class_names
    class_names: list[str]  # the label name of each class
    class_groups: list[str]  # its group (e.g. the alphabet); "" without a group column
    class_datasets: list[str]  # the dataset it comes from

    def members(self) -> list[np.ndarray]:
        """Row indices of each class, in row order."""
        order = np.argsort(self.classes, kind="stable")
        bounds = np.searchsorted(self.classes[order], np.arange(len(self.class_names) + 1))
        return [order[bounds[c] : bounds[c + 1]] for c in range(len(self.class_names))]


def resize(images: torch.Tensor, size: Optional[int]) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, size, size) by area averaging (exact for 105 -> 28 style downsampling)."""
    if size is None or tuple(images.shape[-2:]) == (size, size):
        return images
    return F.interpolate(images, size=(size, size), mode="area")


def load_pool(data_dirs: Mapping[str, str | os.PathLike], image_size: Optional[int]) -> ClassPool:
    """A pool of the prepared image datasets ``name -> folder``, resized to ``image_size`` (None: as is)."""
    from metahpo.data.prepare import group_array, input_array, label_array, load_prepared

    images, classes, names, groups, origins = [], [], [], [], []
    for dataset, folder in data_dirs.items():
        data, info = load_prepared(folder)
        if info.get("modality") != "image":
            raise DataError(
                f"fewshot.datasets: {dataset!r} is {info.get('modality')} data; few-shot episodes need an image "
                "dataset"
            )
        group_names = info.get("group_names")
        offset = len(names)
        class_group: dict[int, str] = {}
        for split in SPLITS:
            pixels = torch.from_numpy(input_array(data[split], info)).permute(0, 3, 1, 2).float() / 255.0
            images.append(resize(pixels, image_size))
            labels = label_array(data[split])
            classes.append(labels + offset)
            if "group" in data[split].column_names:
                for label, code in zip(labels, group_array(data[split])):
                    class_group[int(label)] = group_names[code] if group_names else str(int(code))
        names.extend(info["label_names"])
        groups.extend(class_group.get(label, "") for label in range(len(info["label_names"])))
        origins.extend([dataset] * len(info["label_names"]))
    shapes = {tuple(batch.shape[1:]) for batch in images}
    channels = max(shape[0] for shape in shapes)
    if len({shape[1:] for shape in shapes}) > 1:
        raise DataError(
            f"fewshot.datasets: image sizes differ ({sorted(shapes)}); set fewshot.image_size to resize them to one"
        )
    images = [batch.expand(-1, channels, -1, -1) if batch.shape[1] != channels else batch for batch in images]
    return ClassPool(torch.cat(images).contiguous(), np.concatenate(classes), names, groups, origins)


def split_classes(pool: ClassPool, by: str, validation: Sequence[str], test: Sequence[str]) -> dict[str, np.ndarray]:
    """Class indices of each split: the named classes / groups / datasets go to validation and test,
    every other class to train. Names that match nothing are an error naming the valid ones."""
    key = {"class": pool.class_names, "group": pool.class_groups, "dataset": pool.class_datasets}[by]
    valid = sorted(set(key))
    for role, names in (("validation", validation), ("test", test)):
        unknown = [name for name in names if name not in valid]
        if unknown:
            raise DataError(
                f"fewshot.split.{role}: no {by} named {', '.join(map(repr, unknown))}; valid names: {', '.join(valid)}"
            )
    both = set(validation) & set(test)
    if both:
        raise DataError(f"fewshot.split: {sorted(both)} are in both validation and test; meta splits must be disjoint")
    role_of = {**{name: "validation" for name in validation}, **{name: "test" for name in test}}
    assigned = np.array([role_of.get(name, "train") for name in key])
    return {role: np.flatnonzero(assigned == role) for role in SPLITS}


class EpisodeSampler:
    """Draws episode ``i`` of an N-way K-shot problem over ``classes`` of ``pool``, from seed ``(seed, i)``."""

    def __init__(self, pool: ClassPool, classes: np.ndarray, ways: int, shots: int, queries: int, seed: int,
                 rotations: bool = False, split: str = "train") -> None:  # fmt: skip
        self.pool, self.ways, self.shots, self.queries, self.seed = pool, ways, shots, queries, seed
        members = pool.members()
        # a candidate is (class, quarter turns): rotations make each turn a class of its own
        turns = range(ROTATIONS) if rotations else range(1)
        self.candidates = [(int(c), k) for c in classes for k in turns]
        self.members = {int(c): members[int(c)] for c in classes}
        if len(self.candidates) < ways:
            raise DataError(
                f"fewshot: the {split} split has {len(self.candidates)} classes, fewer than {ways} ways; move classes "
                "into it (fewshot.split) or lower the ways"
            )
        short = [pool.class_names[c] for c, rows in self.members.items() if len(rows) < shots + queries]
        if short:
            raise DataError(
                f"fewshot: {len(short)} {split} classes (e.g. {short[0]!r}) have fewer than shots + queries = "
                f"{shots + queries} images; lower fewshot queries or shots"
            )

    def episode(self, index: int) -> Episode:
        rng = np.random.default_rng([self.seed, index])
        picked = rng.choice(len(self.candidates), size=self.ways, replace=False)
        support, query = [], []
        for candidate in picked:
            cls, turns = self.candidates[candidate]
            rows = rng.choice(self.members[cls], size=self.shots + self.queries, replace=False)
            images = self.pool.images[torch.from_numpy(np.sort(rows))]
            images = torch.rot90(images, turns, dims=(2, 3)) if turns else images
            order = torch.from_numpy(rng.permutation(len(rows)))
            support.append(images[order[: self.shots]])
            query.append(images[order[self.shots :]])
        labels = torch.arange(self.ways)
        return Episode(
            torch.cat(support), labels.repeat_interleave(self.shots), torch.cat(query),
            labels.repeat_interleave(self.queries),
        )  # fmt: skip

    def episodes(self, count: int, start: int = 0) -> Iterator[Episode]:
        return (self.episode(i) for i in range(start, start + count))


# --- fixed episode tables -------------------------------------------------------------------------


def write_episode_table(path: str | os.PathLike, episodes: Sequence[Episode]) -> None:
    """Episodes as a Parquet table (``episode``, ``role``, ``image`` as PNG bytes, ``label``), atomically."""
    import pandas as pd
    import PIL.Image

    from metahpo.io import write_parquet

    rows = []
    for number, episode in enumerate(episodes):
        for role, xs, ys in (("support", episode.support_x, episode.support_y), ("query", episode.query_x, episode.query_y)):
            for x, y in zip(xs, ys):
                pixels = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
                image = PIL.Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
                buffer = io.BytesIO()
                image.save(buffer, format="PNG")
                rows.append({"episode": number, "role": role, "image": buffer.getvalue(), "label": int(y)})
    write_parquet(path, pd.DataFrame(rows, columns=list(EPISODE_COLUMNS)))


def read_episode_table(path: str | os.PathLike, image_size: Optional[int], channels: int) -> list[Episode]:
    """Episodes of a fixed table, every problem found before any scoring: a missing column, a role other
    than support/query, an episode without a support or a query set, a query label absent from the
    support, an undecodable image, mixed image sizes. Images become ``channels`` channels, ``image_size``."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such episode table")
    try:
        table = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several types for a file that is not Parquet
        raise DataError(f"{path}: not a Parquet file ({type(err).__name__}: {err})") from None
    missing = [c for c in EPISODE_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; an episode table has {', '.join(EPISODE_COLUMNS)}")
    bad_roles = sorted(set(table["role"]) - set(ROLES))
    if bad_roles:
        raise DataError(f"{path}: column role holds {bad_roles}; roles are support and query")
    episodes = []
    for number, rows in table.groupby("episode", sort=True):
        sets = {}
        for role in ROLES:
            part = rows[rows["role"] == role]
            if part.empty:
                raise DataError(f"{path}: episode {number} has no {role} set (column role)")
            labels = torch.from_numpy(np.array(part["label"].to_numpy(), dtype=np.int64))  # a copy: pandas' is read-only
            sets[role] = (_decode(part["image"], path, number, channels), labels)
        if sets["support"][0].shape[1:] != sets["query"][0].shape[1:]:
            raise DataError(f"{path}: episode {number}: images in column image differ in size between support and query")
        support_labels = set(sets["support"][1].tolist())
        if not set(sets["query"][1].tolist()) <= support_labels:
            raise DataError(f"{path}: episode {number} has query labels (column label) that its support set lacks")
        if support_labels != set(range(len(support_labels))):
            raise DataError(f"{path}: episode {number}: support labels (column label) must be 0..N-1, got {sorted(support_labels)}")
        episodes.append(Episode(resize(sets["support"][0], image_size), sets["support"][1],
                                resize(sets["query"][0], image_size), sets["query"][1]))  # fmt: skip
    if not episodes:
        raise DataError(f"{path}: the table has no rows")
    return episodes


def _decode(column, path: Path, episode, channels: int) -> torch.Tensor:
    import PIL.Image

    arrays = []
    for item in column:
        try:
            image = PIL.Image.open(io.BytesIO(item))
            image = image.convert("L" if channels == 1 else "RGB")
        except Exception as err:  # PIL raises many types for bad bytes
            raise DataError(f"{path}: episode {episode}: column image holds bytes that are not an image ({err})") from None
        array = np.asarray(image, dtype=np.uint8)
        arrays.append(array[..., None] if array.ndim == 2 else array)
    if len({a.shape for a in arrays}) > 1:
        raise DataError(f"{path}: episode {episode}: images in column image differ in size")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255.0
