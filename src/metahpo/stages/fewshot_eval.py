"""Stage fewshot_eval: every few-shot method on the same meta-test episodes, step by step; the transfer task."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from metahpo.fewshot.evaluate import evaluate_method, summarize
from metahpo.fewshot.inits import load_init
from metahpo.fewshot.meta_train import new_body
from metahpo.fewshot.methods import METHODS
from metahpo.fewshot.transfer import time_to_threshold
from metahpo.io import read_json, write_json, write_parquet
from metahpo.search_space import stable_seed
from metahpo.stages.fewshot_problem import fewshot_problem, inner_settings, sampler
from metahpo.training import describe_device, resolve_device, seed_everything

EPISODE_COLUMNS = ["method", "setting", "episode", "step", "accuracy", "macro_f1", "seconds"]


def run(params, job) -> None:
    (data_root, inits), (episodes_out, curves_out, summary_out) = job.deps, job.outs
    fewshot = params.fewshot
    if fewshot is None:
        empty = pd.DataFrame(columns=EPISODE_COLUMNS)
        write_parquet(episodes_out, empty)
        write_parquet(curves_out, pd.DataFrame(columns=["method", "setting", "step"]))
        write_json(summary_out, {"enabled": False})
        print("fewshot: null in the params: nothing to evaluate")
        return
    device = resolve_device(params.device)
    pool, splits = fewshot_problem(fewshot, data_root)
    inner = inner_settings(fewshot)
    manifest = read_json(Path(inits, "inits.json"))
    channels, filters = int(pool.images.shape[1]), fewshot.filters
    states = {name: load_init(Path(inits, file), device)[0] for name, file in manifest["inits"].items()}
    shared_body = new_body(channels, filters, params.seed, device)
    seed_everything(params.seed)

    frames = []
    for setting in fewshot.evaluate.settings:
        test = sampler(pool, splits, "test", setting.ways, setting.shots, fewshot.evaluate.queries, params.seed)
        for name in fewshot.methods:
            method = METHODS.get(name)
            if method.init_name is None:  # a fresh random body per episode, seeded by the episode
                bodies = {}

                def body_for(i, setting=setting):
                    bodies.clear()
                    bodies[i] = new_body(channels, filters, stable_seed(params.seed, "random_init", setting.name, i), device)
                    return bodies[i]

                def state_for(i):
                    return dict(bodies[i].named_parameters())
            else:
                state = states[method.init_name]

                def body_for(i):
                    return shared_body

                def state_for(i, state=state):
                    return state
            frame = evaluate_method(method, body_for, state_for, test.episodes(fewshot.evaluate.episodes), inner, device,
                                    total=fewshot.evaluate.episodes, desc=f"{setting.name} {name}")  # fmt: skip
            frame.insert(0, "setting", setting.name)
            frame.insert(0, "method", name)
            frames.append(frame)
    episodes = pd.concat(frames, ignore_index=True)
    curves, table = summarize(episodes, fewshot.evaluate.threshold)
    table["meta_learned"] = [METHODS.get(m).meta_learned for m in table["method"]]
    summary = {
        "enabled": True,
        "device": describe_device(device),
        "threshold": fewshot.evaluate.threshold,
        "table": table.to_dict("records"),
        "meta_training": {
            name: {k: read_json(Path(inits, f"{name}.json"))[k] for k in ("seconds", "peak_memory_mb", "best_iteration", "iterations")}
            for name in manifest["inits"]
        },
        "transfer": None,
    }
    if fewshot.transfer is not None:
        summary["transfer"] = time_to_threshold(
            pool, splits["test"], fewshot.transfer, {m: METHODS.get(m).init_name for m in fewshot.transfer.inits},
            Path(inits), filters, params.seed, device, params.precision,
        )  # fmt: skip
    write_parquet(episodes_out, episodes)
    write_parquet(curves_out, curves)
    write_json(summary_out, summary)
    print(table[["method", "setting", "accuracy", "accuracy_ci", "steps_to_threshold"]].to_string(index=False))
