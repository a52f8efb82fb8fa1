"""The few-shot targets on Omniglot background-small, whole alphabets held out, through the pipeline's stages.

Takes the mirror-small profile's ``fewshot`` section (Omniglot 28x28, meta-train on 6 alphabets x4
rotations, meta-validate on Greek, meta-test on Japanese (katakana)) and scales its budgets up to
benchmark size (the overrides below), writes that params file into ``--out``, and runs the
download, meta_init and fewshot_eval stages there, so the figures come from the same code as a
pipeline run. Prints the comparison table and the transfer task. Not a test; run it by hand:

    python benchmarks/fewshot_omniglot.py --out /tmp/fewshot-bench [--methods protonet,fomaml,...]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BENCHMARK = {  # the budgets of the benchmark run (2 CPU cores: about 30 minutes of meta-training)
    "filters": 64,
    "meta_train": {"ways": 5, "shots": 1, "queries": 5, "iterations": 600, "meta_batch": 8, "meta_lr": 0.003,
                   "inner_lr": 0.1, "inner_steps": 3, "second_order": True, "batch_size": 64,
                   "validate_every": 100, "validation_episodes": 100, "checkpoint_every": 50},
    "evaluate": {"settings": [{"ways": 5, "shots": 1}, {"ways": 5, "shots": 5}, {"ways": 20, "shots": 1}],
                 "queries": 5, "episodes": 600, "steps": 10, "threshold": 0.9},
    "transfer": {"inits": ["fomaml", "pretrain_finetune", "random_init"], "epochs": 15, "batch_size": 32,
                 "lr": 0.001, "threshold": 0.6},
}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="work folder: params.yaml and results/ go here")
    parser.add_argument("--methods", help="comma-separated few-shot methods (default: the profile's)")
    parser.add_argument("--iterations", type=int, help="override meta_train.iterations")
    args = parser.parse_args()
    raw = yaml.safe_load((REPO / "params" / "mirror-small.yaml").read_text())
    fewshot = {**raw["fewshot"], **BENCHMARK}
    if args.methods:
        fewshot["methods"] = args.methods.split(",")
        fewshot["transfer"]["inits"] = [m for m in fewshot["transfer"]["inits"] if m in fewshot["methods"]]
    if args.iterations:
        fewshot["meta_train"]["iterations"] = args.iterations
    raw["fewshot"] = fewshot
    raw["download"]["mirror"] = str((REPO.parent / "shared" / "hf-mirror").resolve())
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    os.chdir(out)

    from metahpo.stages import run_stage

    for dataset in fewshot["datasets"]:
        if not Path("results/data", dataset).is_dir():
            run_stage("download", "params.yaml", dataset)
    run_stage("meta_init", "params.yaml")
    run_stage("fewshot_eval", "params.yaml")
    summary = json.loads(Path("results/fewshot/summary.json").read_text())
    print(json.dumps(summary["meta_training"], indent=1))
    for row in summary["table"]:
        print(f"{row['setting']:>14} {row['method']:>22} {row['accuracy']:.4f} +- {row['accuracy_ci']:.4f} "
              f"F1 {row['macro_f1']:.4f}  steps to {summary['threshold']}: {row['steps_to_threshold']}")  # fmt: skip
    print(json.dumps(summary["transfer"], indent=1))


if __name__ == "__main__":
    main()
