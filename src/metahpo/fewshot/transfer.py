"""The non-episodic use of an initialization: ordinary training (the conv4 family, ``train_model``) on
the meta-test classes as one classification task, from each method's init; time to a validation
accuracy threshold in epochs, optimizer steps and seconds. Each class's images are split 60/20/20
into train / validation / test by a seeded permutation, the same for every init."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from metahpo.fewshot.episodes import ClassPool
from metahpo.search_space import stable_seed

FRACTIONS = (0.6, 0.2)  # train, validation; the rest is test


def transfer_data(pool: ClassPool, classes: np.ndarray, seed: int):
    from metahpo.models.conv4 import prepared_from_arrays

    members = pool.members()
    rows = {"train": [], "validation": [], "test": []}
    labels = {"train": [], "validation": [], "test": []}
    for label, cls in enumerate(classes):
        order = np.random.default_rng([stable_seed(seed, "transfer"), int(cls)]).permutation(members[int(cls)])
        cut = [round(len(order) * FRACTIONS[0]), round(len(order) * sum(FRACTIONS))]
        for split, part in zip(rows, np.split(order, cut)):
            rows[split].append(part)
            labels[split].append(np.full(len(part), label))
    x = {s: pool.images[torch.from_numpy(np.concatenate(r))] for s, r in rows.items()}
    y = {s: np.concatenate(v) for s, v in labels.items()}
    return prepared_from_arrays(x, y, len(classes))


def time_to_threshold(pool: ClassPool, classes: np.ndarray, settings, inits: dict[str, str | None],
                      folder: Path, filters: int, seed: int, device, precision: str) -> dict:  # fmt: skip
    """method -> curve and time to ``settings.threshold`` validation accuracy, training from its init
    (``inits[method]`` names the file stem; None: random). ``settings`` is params.fewshot.transfer."""
    from metahpo.training import train_model

    data = transfer_data(pool, classes, seed)
    steps_per_epoch = math.ceil(len(data.train) / settings.batch_size)
    results = {}
    for method, init in inits.items():
        options = (
            {"init": "random", "filters": filters}
            if init is None
            else {"init": "meta", "init_path": str(folder / f"{init}.safetensors")}
        )
        result = train_model("conv4", data, {"lr": settings.lr, "batch_size": settings.batch_size}, epochs=settings.epochs,
                             seed=seed, device=device, precision=precision,
                             options=_options(options))  # fmt: skip
        if result.state != "ok":
            results[method] = {"state": result.state, "message": result.message}
            continue
        curve = result.curve_val_metric
        reached = next((epoch for epoch, value in enumerate(curve, start=1) if value >= settings.threshold), None)
        results[method] = {
            "state": "ok", "init": init or "random", "val_accuracy": curve, "seconds": result.curve_seconds,
            "test_accuracy": result.test_accuracy, "epochs_to_threshold": reached,
            "steps_to_threshold": None if reached is None else reached * steps_per_epoch,
            "seconds_to_threshold": None if reached is None else float(sum(result.curve_seconds[:reached])),
        }  # fmt: skip
    return {"classes": len(classes), "train_rows": len(data.train), "steps_per_epoch": steps_per_epoch,
            "threshold": settings.threshold, "methods": results}  # fmt: skip


def _options(raw: dict):
    from metahpo.models.conv4 import Conv4Options

    return Conv4Options(**raw)
