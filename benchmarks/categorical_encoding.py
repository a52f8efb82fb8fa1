"""One-hot against integer order-encoding of a categorical hyperparameter, on the categorical synthetic meta-dataset.

``make_synthetic(..., categorical=True)``: six activations whose factors follow a smooth trend along
their sorted (integer) order except the best, a lone peak between two bad neighbours, which one
depending on the meta-feature. The same table is read
twice: as recorded (``hp.activation`` strings, one-hot by ``metadataset.Encoding``) and order-encoded
(``synthetic.order_encoded``: the codes 0..5, read as one ordered number). Every strategy is replayed
leave one task out on both; prints regret@k (mean ±95% interval over seeds) per encoding. Not a test;
run it by hand:

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/categorical_encoding.py [--tasks 8 --configs 216 ...]
"""

from __future__ import annotations

import argparse
import time

from metahpo.hpo import metadataset
from metahpo.hpo.regret_summary import markdown_regret_at, regret_at
from metahpo.hpo.replay import replay_strategies
from metahpo.hpo.synthetic import make_synthetic, order_encoded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--configs", type=int, default=216, help="pool rows per task (a multiple of 6)")
    parser.add_argument("--trials", type=int, default=25)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--strategies", default="random,tpe,gp_bo,zero_shot,transfer_bo")
    args = parser.parse_args()

    table, mf = make_synthetic(args.tasks, args.configs, seed=0, noise=0.01, categorical=True)
    names = args.strategies.split(",")
    checkpoints = [k for k in (1, 5, 10, 15, 20, 25, 30, 50) if k <= args.trials]
    for label, frame in (("one-hot (as recorded)", table), ("integer order (0..5)", order_encoded(table))):
        data = metadataset.from_frame(frame, meta_features=mf)
        start = time.perf_counter()
        regret = replay_strategies(data, names, args.trials, range(args.seeds), progress=False)
        print(f"\n{label}: X has {data.encoding.width} columns; {args.tasks} tasks x {args.configs} rows, "
              f"{args.seeds} seeds, replayed in {time.perf_counter() - start:.1f} s")
        print(markdown_regret_at(regret_at(regret, checkpoints), order=names))


if __name__ == "__main__":
    main()
