"""The learning-rate stages (lr_meta, lr_eval) of a profile on already prepared datasets, outside
Snakemake, for docs/PERFORMANCE.md.

Usage: python benchmarks/lr_control.py PARAMS OUT_ROOT DATA_ROOT RECOMMENDATIONS.json [meta] [eval]
(DATA_ROOT holds results/data-style folders of the tasks' datasets; RECOMMENDATIONS is fit_meta's
recommendations.json, read only by the `recommended` method.)
"""
import sys, time, json
from pathlib import Path
from metahpo.config import load_params
from metahpo.pipeline import Job
from metahpo.stages import lr_meta, lr_eval
params = load_params(sys.argv[1])
root = Path(sys.argv[2]); data = sys.argv[3]; rec = sys.argv[4]
t = time.perf_counter()
if "meta" in sys.argv[5:]:
    lr_meta.run(params, Job("lr_meta", None, [data], [str(root / "lr_meta/controller")]))
    print("lr_meta", time.perf_counter() - t, flush=True)
t = time.perf_counter()
if "eval" in sys.argv[5:]:
    lr_eval.run(params, Job("lr_eval", None, [data, str(root / "lr_meta/controller"), rec],
        [str(root / "lr_eval/runs.parquet"), str(root / "lr_eval/traces.parquet"), str(root / "lr_eval/summary.json")]))
    print("lr_eval", time.perf_counter() - t)
