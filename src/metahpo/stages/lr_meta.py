"""Stage lr_meta: meta-train the learning-rate controller on lr_control.meta_train_tasks (evolution
strategies, resumable) -> results/lr_meta/controller/ (controller.safetensors, meta_training.json).

The checkpoint lives beside the output, named by everything that shapes the run (its code
included), and is kept after
success: a rerun for a change elsewhere in lr_control (the evaluation's seeds or methods) resumes at
the end and retrains nothing.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from tqdm.auto import tqdm

from metahpo.codedeps import fingerprint
from metahpo.io import atomic_dir, write_json
from metahpo.lrcontrol.meta_train import meta_train
from metahpo.stages.lr_problem import controller_config, es_settings, lr_task
from metahpo.training import describe_device, resolve_device
from metahpo.trial_log import shape_key

MANIFEST = "meta_training.json"


def run(params, job) -> None:
    (data_root,), (out,) = job.deps, job.outs
    control, out = params.lr_control, Path(out)
    if control is None:
        with atomic_dir(out) as tmp:
            write_json(tmp / MANIFEST, {"enabled": False})
        print("lr_control: null in the params: no controller to meta-train")
        return
    config, settings = controller_config(control), es_settings(control)
    tasks = [lr_task(params, task, data_root) for task in control.meta_train_tasks]
    shaping = [fingerprint(__name__), params.seed, asdict(config), asdict(settings), control.meta_train_tasks,
               {t.name: t.config for t in tasks}, {t.name: params.tasks[t.name].model_dump(mode="json") for t in tasks}]
    checkpoint = out.parent / "checkpoints" / f"controller-{shape_key(shaping, 12)}.safetensors"
    device = resolve_device(params.device)
    bar = tqdm(total=settings.iterations, desc="lr_meta", unit="iteration")

    def progress(record):
        bar.n = record["iteration"]
        score = f"population {record['population_score']:.3f}"
        if "validation_score" in record:
            score += f", validation {record['validation_score']:.3f}"
        bar.set_postfix_str(score)
        bar.refresh()

    trained = meta_train(tasks, config, settings, params.seed, device, checkpoint, progress)
    bar.close()
    with atomic_dir(out) as tmp:
        provenance = {"tasks": control.meta_train_tasks, "best_iteration": trained.best_iteration,
                      "best_score": trained.best_score, "seed": params.seed}  # fmt: skip
        trained.controller.save(tmp, provenance)
        write_json(tmp / MANIFEST, {
            "enabled": True, "tasks": control.meta_train_tasks, "eval_tasks": control.eval_tasks,
            "config": asdict(config), "settings": asdict(settings), "history": trained.history,
            "best_iteration": trained.best_iteration, "best_score": trained.best_score, "seconds": trained.seconds,
            "runs": trained.runs, "parameters": sum(p.numel() for p in trained.controller.parameters()),
            "device": describe_device(device),
        })  # fmt: skip
    print(f"lr_meta: {trained.runs} runs in {trained.seconds:.0f} s; best meta-validation score "
          f"{trained.best_score:.3f} at iteration {trained.best_iteration}")
