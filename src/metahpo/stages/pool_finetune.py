"""Stage pool_finetune: the ground truth. Every serving pool member fine-tuned on every target task
with the one recipe (selection.finetune), recorded like a sweep -> results/pool_finetune/truth.parquet.

Each finished fine-tuning is appended to the progress log beside the output, keyed by everything
that shapes it (the code of the stage's import closure, the member's descriptor, the target, the
recipe, the seed), and the log is kept: an
interrupted run resumes, and a rerun for a params change elsewhere in ``selection`` retrains nothing.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from metahpo.codedeps import fingerprint
from metahpo.io import write_parquet
from metahpo.selection.pool import FinetuneSettings, finetune, read_pool, serving, target_data
from metahpo.training import resolve_device
from metahpo.trial_log import append_partial, partial_path, read_partial, shape_key


def settings_for(selection, family: str) -> FinetuneSettings:
    recipe = selection.finetune
    return FinetuneSettings(recipe.lr_of(family), recipe.batch_size, recipe.epochs, recipe.weight_decay)


def run(params, job) -> None:
    (data_root, pool_dir), (out,) = job.deps, job.outs
    selection = params.selection
    columns = ["target", "dataset", "member", "family", "state", "message", "metric", "truth", "val_metric",
               "test_accuracy", "test_macro_f1", "seconds", "epochs_run", "train_rows", "classes", "key"]
    if selection is None:
        write_parquet(out, pd.DataFrame(columns=columns))
        print("selection: null in the params: no ground truth to compute")
        return
    members = read_pool(pool_dir)
    device = resolve_device(params.device)
    log = partial_path(out)
    log.parent.mkdir(parents=True, exist_ok=True)
    done = {row["key"]: row for row in read_partial(log)}
    code = fingerprint(__name__)  # an edited recipe or loop never reuses an old fine-tuning
    plan = []
    for target, spec in selection.targets.items():
        dataset_dict, info = target_data(target, spec.dataset, spec.classes, spec.max_train, data_root, params.seed)
        for member in serving(members, info, target):
            settings = settings_for(selection, member.descriptor["family"])
            key = shape_key([code, params.seed, target, spec.model_dump(mode="json"), member.descriptor, settings.__dict__])
            plan.append((target, spec, dataset_dict, info, member, settings, key))
    rows = []
    bar = tqdm(total=len(plan), initial=sum(p[-1] in done for p in plan), desc="pool_finetune", unit="fine-tune")
    try:
        for target, spec, dataset_dict, info, member, settings, key in plan:
            if key not in done:
                data = member.prepare(dataset_dict, info)
                result = finetune(member, data, settings, params.seed, device, params.precision)
                done[key] = {
                    "target": target, "dataset": spec.dataset, "member": member.name,
                    "family": member.descriptor["family"], "state": result.state, "message": result.message,
                    "metric": result.metric, "truth": result.test_metric if result.ok else None,
                    "val_metric": result.val_metric if result.ok else None,
                    "test_accuracy": result.test_accuracy if result.ok else None,
                    "test_macro_f1": result.test_macro_f1 if result.ok else None, "seconds": result.seconds,
                    "epochs_run": result.epochs_run, "train_rows": len(data.train), "classes": data.num_classes,
                    "key": key,
                }  # fmt: skip
                append_partial(log, done[key])
                bar.set_postfix_str(f"{target} {member.name} {result.state} {result.test_metric:.3f}")
                bar.update()
            rows.append(done[key])
    finally:
        bar.close()
    write_parquet(out, pd.DataFrame(rows, columns=columns))
