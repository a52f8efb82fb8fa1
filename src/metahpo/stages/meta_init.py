"""Stage meta_init: train each few-shot method's initialization on the meta-train classes (resumable)."""

from __future__ import annotations

from pathlib import Path

from metahpo.fewshot.inits import save_init
from metahpo.fewshot.meta_train import LoopSettings, train_init
from metahpo.fewshot.methods import METHODS
from metahpo.io import atomic_dir, write_json
from metahpo.stages.fewshot_problem import fewshot_problem, inner_settings, sampler
from metahpo.training import describe_device, resolve_device
from metahpo.trial_log import shape_key

MANIFEST = "inits.json"


def run(params, job) -> None:
    (data_root,), (out,) = job.deps, job.outs
    fewshot = params.fewshot
    out = Path(out)
    if fewshot is None:
        with atomic_dir(out) as tmp:
            write_json(Path(tmp) / MANIFEST, {"enabled": False, "inits": {}})
        print("fewshot: null in the params: no initializations to train")
        return
    pool, splits = fewshot_problem(fewshot, data_root)
    train = fewshot.meta_train
    inner = inner_settings(fewshot)
    device = resolve_device(params.device)
    loop = LoopSettings(train.iterations, train.meta_batch, train.meta_lr, train.validate_every,
                        train.validation_episodes, train.checkpoint_every, train.batch_size)  # fmt: skip
    episodes = sampler(pool, splits, "train", train.ways, train.shots, train.queries, params.seed, fewshot.rotations)
    validation = (
        sampler(pool, splits, "validation", train.ways, train.shots, train.queries, params.seed)
        if len(splits["validation"]) else None
    )  # fmt: skip
    # checkpoints live beside the output (not in it: a tool clears its outputs before a run) and are
    # named by everything that shapes the run, so a changed param never resumes a stale one
    fingerprint = shape_key([params.seed, fewshot.model_dump(mode="json")], 12)
    checkpoints = out.parent / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    trained = {}
    for name in fewshot.methods:
        method = METHODS.get(name)
        init = method.init_name
        if init is None or init in trained:
            continue
        checkpoint = checkpoints / f"{init}-{fingerprint}.safetensors"
        result = train_init(method, pool, episodes, validation, inner, loop, fewshot.filters, params.seed, device,
                            checkpoint, fewshot.rotations, desc=f"meta_init {init}")  # fmt: skip
        trained[init] = (method, result, checkpoint)
        chosen = f"best meta-validation at step {result.best_iteration}" if validation else "no meta-validation split: the last step"
        print(f"meta_init {init}: {result.seconds:.0f} s, {chosen}")
    with atomic_dir(out) as tmp:
        # "order": fewshot.methods' order, which the report keeps (JSON objects are written with sorted keys)
        manifest = {"enabled": True, "device": describe_device(device), "inits": {}, "order": list(trained)}
        for init, (method, result, _) in trained.items():
            config = {
                "init": init, "method": method.name, "training": method.training,
                "in_channels": int(pool.images.shape[1]), "image_size": int(pool.images.shape[-1]),
                "filters": fewshot.filters, "inner_lr": inner.lr, "inner_steps": inner.train_steps, "steps": inner.steps,
                "seconds": result.seconds, "peak_memory_mb": result.peak_memory_mb,
                "best_iteration": result.best_iteration, "iterations": train.iterations,
                "device": describe_device(device), "history": result.history,
            }  # fmt: skip
            save_init(tmp, init, result.state, config)
            manifest["inits"][init] = f"{init}.safetensors"
        write_json(Path(tmp) / MANIFEST, manifest)
    for _, _, checkpoint in trained.values():
        checkpoint.unlink(missing_ok=True)  # the output holds the result now
