"""Stage pool: train (or take as shipped) every member of the model pool -> results/pool/members/<member>/."""

from __future__ import annotations

from pathlib import Path

from metahpo.errors import MetahpoError
from metahpo.data.prepare import load_prepared
from metahpo.io import atomic_dir, read_json, write_json
from metahpo.selection.pool import (
    MANIFEST, VOCABULARY_FILE, WEIGHTS_FILE, Member, checked_classes, parameter_count, save_member, target_data,
)  # fmt: skip
from metahpo.training import describe_device, resolve_device, train_model
from metahpo.models import FAMILIES

INPUT_KEYS = ("in_channels", "input_shape", "in_features", "vocab_size", "max_length", "checkpoint")  # what building needs


def run(params, job) -> None:
    (data_root, metafeatures_root), (out,) = job.deps, job.outs
    selection = params.selection
    with atomic_dir(out) as tmp:
        if selection is None:
            write_json(Path(tmp) / MANIFEST, {"enabled": False, "members": []})
            print("selection: null in the params: no model pool")
            return
        for name, spec in selection.pool.items():  # every source's classes before any training
            if spec.dataset is not None:
                checked_classes(load_prepared(Path(data_root) / spec.dataset)[1], spec.classes, f"selection.pool.{name}")
        device = resolve_device(params.device)
        for name, spec in selection.pool.items():
            descriptor = build(name, spec, Path(tmp), data_root, metafeatures_root, params, device)
            print(f"pool {name}: {descriptor['kind']} {descriptor['family']}, {descriptor['parameters']:,} parameters"
                  + (f", source val {descriptor['training']['val_metric']:.3f}" if descriptor.get("training") else ""))
        write_json(Path(tmp) / MANIFEST, {"enabled": True, "members": list(selection.pool), "device": describe_device(device)})


def build(name: str, spec, pool: Path, data_root, metafeatures_root, params, device) -> dict:
    """Write member ``name`` into ``pool``; return its descriptor."""
    family = FAMILIES.get(spec.family)
    common = {"name": name, "family": spec.family, "options": spec.options, "finetune": spec.finetune,
              "pretrained_family": family.pretrained}  # fmt: skip
    if spec.weights_of is not None:  # a variant: the same weights, another way to fine-tune
        base = read_json(pool / spec.weights_of / "member.json")
        descriptor = {**base, **common, "options": base["options"], "variant_of": spec.weights_of}
        save_member(pool / name, {k: v for k, v in descriptor.items() if k != "format"}, None)
        return descriptor
    if spec.dataset is None:  # a pretrained checkpoint as it ships: its head is new for every target
        descriptor = {**common, "kind": "checkpoint", "config": spec.config, "input": {}, "weights": None,
                      "source": {"dataset": None, "num_classes": None, "rows": None, "metafeatures": None},
                      "training": None, "parameters": 0}  # fmt: skip
        save_member(pool / name, descriptor, None)
        descriptor["parameters"] = parameter_count(Member(name, descriptor, pool).load())
        save_member(pool / name, descriptor, None)
        return descriptor
    dataset_dict, info = target_data(name, spec.dataset, spec.classes, None, data_root, params.seed)
    family.check_dataset(info, f"selection.pool.{name}")
    options = family.options(spec.options)
    data = family.prepare(dataset_dict, info, options)
    result = train_model(family, data, spec.config, epochs=spec.epochs, seed=params.seed, device=device,
                         precision=params.precision, options=options, keep_model=True)  # fmt: skip
    if not result.ok:
        raise MetahpoError(f"pool member {name}: training {result.state} ({result.message}); change its config")
    metafeatures_file = Path(metafeatures_root) / f"{spec.dataset}.json"
    descriptor = {
        **common, "kind": "trained", "config": spec.config,
        "input": {key: data.info[key] for key in INPUT_KEYS if key in data.info},
        "weights": f"{name}/{WEIGHTS_FILE}",
        "source": {"dataset": spec.dataset, "classes": info["label_names"], "num_classes": data.num_classes,
                   "rows": len(data.train),
                   "metafeatures": read_json(metafeatures_file) if metafeatures_file.is_file() else None},
        "training": {"epochs": result.epochs_run, "val_metric": result.val_metric, "test_metric": result.test_metric,
                     "metric": result.metric, "seconds": result.seconds, "device": result.device},
        "parameters": parameter_count(result.model),
    }  # fmt: skip
    if "words" in data.info:
        descriptor["vocabulary"] = f"{name}/{VOCABULARY_FILE}"
        (pool / name).mkdir(parents=True, exist_ok=True)
        write_json(pool / name / VOCABULARY_FILE, data.info["words"])
    save_member(pool / name, descriptor, result.model)
    return descriptor
