"""The learning-rate controller: its schedule, persistence and errors, the methods, ES meta-training
(resume), the evaluation's steps to threshold and ratios, and the params checks."""

from __future__ import annotations

import math
from dataclasses import replace

import pandas as pd
import pytest
import torch

from metahpo.errors import MetahpoError
from metahpo.lrcontrol.adam_hd import AdamHD
from metahpo.lrcontrol.controller import ControllerConfig, LRController
from metahpo.lrcontrol.evaluate import oracle_lr, step_ratios, steps_to_threshold, threshold_table
from metahpo.lrcontrol.meta_train import ESSettings, LRTask, meta_train
from metahpo.lrcontrol.methods import METHODS, MethodInputs
from metahpo.models import FAMILIES
from metahpo.training import train_model
from test_models_vision_tabular import canonical_digits, one_torch_thread  # noqa: F401 (autouse)

MLP_CONFIG = {"lr": 0.001, "batch_size": 32, "hidden": 32, "dropout": 0.1}


@pytest.fixture(scope="module")
def digits_task() -> LRTask:
    data, info = canonical_digits()
    family = FAMILIES.get("mlp")
    options = family.options({})
    return LRTask("digits-mlp", family, options, family.prepare(data, info, options), MLP_CONFIG)


def rising_controller(config: ControllerConfig = ControllerConfig()) -> LRController:
    """A controller whose every decision is the largest increase (head bias large, weights zero)."""
    controller = LRController(config)
    with torch.no_grad():
        controller.head.bias.fill_(10.0)
    return controller


def quadratic_optimizer(lr: float = 1e-3, kind=torch.optim.Adam):
    weight = torch.nn.Parameter(torch.ones(4))
    return weight, kind([weight], lr=lr)


def drive(schedule, weight, optimizer, steps: int) -> None:
    for _ in range(steps):
        optimizer.zero_grad()
        loss = (weight**2).sum()
        loss.backward()
        optimizer.step()
        schedule.step(loss.item())


def test_untrained_controller_keeps_the_rate_and_a_rising_one_is_bounded():
    weight, optimizer = quadratic_optimizer()
    schedule = LRController().schedule(optimizer, total_steps=100)
    drive(schedule, weight, optimizer, 50)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)  # zero head: factor 1

    config = ControllerConfig(every=5, max_change=2.0, lr_max=0.01)
    weight, optimizer = quadratic_optimizer()
    schedule = rising_controller(config).schedule(optimizer, total_steps=100)
    drive(schedule, weight, optimizer, 5)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(2e-3, rel=1e-4)  # one decision: x max_change
    drive(schedule, weight, optimizer, 4)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(2e-3, rel=1e-4)  # acts every 5 steps only
    drive(schedule, weight, optimizer, 50)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01)  # clipped at lr_max
    assert [step for step, _ in schedule.history] == list(range(0, 60, 5))


def test_features_are_finite_and_clipped():
    weight, optimizer = quadratic_optimizer()
    schedule = LRController(ControllerConfig(every=5)).schedule(optimizer, total_steps=30)
    drive(schedule, weight, optimizer, 2)
    schedule.validation(2.0)
    schedule.validation(1e-30)  # an absurd drop: clipped, not inf
    schedule.step(0.5)
    features = schedule.features()
    assert set(features) == set(ControllerConfig().features)
    assert all(math.isfinite(v) and abs(v) <= 5 for v in features.values())
    assert features["progress"] == pytest.approx(3 / 30)


def test_save_load_round_trip_and_checkpointed_schedule(tmp_path):
    controller = LRController(ControllerConfig(hidden=4, every=2))
    with torch.no_grad():
        controller.head.weight.normal_()
    controller.save(tmp_path, {"tasks": ["a"]})
    loaded = LRController.load(tmp_path)
    assert loaded.config == controller.config and loaded.provenance == {"tasks": ["a"]}
    assert torch.equal(loaded.vector(), controller.vector())

    # a schedule resumed from its state_dict decides exactly as the uninterrupted one
    weight_a, optimizer_a = quadratic_optimizer()
    weight_b, optimizer_b = quadratic_optimizer()
    a, b = loaded.schedule(optimizer_a, 40), loaded.schedule(optimizer_b, 40)
    drive(a, weight_a, optimizer_a, 10)
    drive(b, weight_b, optimizer_b, 10)
    state = b.state_dict()
    resumed = loaded.schedule(optimizer_b, 40)
    resumed.load_state_dict(state)
    drive(a, weight_a, optimizer_a, 1)
    drive(resumed, weight_b, optimizer_b, 1)
    assert optimizer_b.param_groups[0]["lr"] == pytest.approx(optimizer_a.param_groups[0]["lr"])


def test_load_names_what_does_not_match(tmp_path):
    from safetensors.torch import save_file

    with pytest.raises(MetahpoError, match="run the lr_meta stage first"):
        LRController.load(tmp_path / "none")
    controller = LRController()
    path = controller.save(tmp_path / "features")
    state = {k: v.contiguous() for k, v in controller.state_dict().items()}
    config = ControllerConfig().to_json().replace('"gap"', '"curvature"')
    save_file(state, str(path), metadata={"config": config})
    with pytest.raises(MetahpoError, match=r"features \['curvature'\] that this version does not compute"):
        LRController.load(path)
    other = ControllerConfig(hidden=3).to_json()
    save_file(state, str(path), metadata={"config": other})
    with pytest.raises(MetahpoError, match="do not match its config's controller"):
        LRController.load(path)
    path.write_bytes(b"not safetensors")
    with pytest.raises(MetahpoError, match="not a readable safetensors file"):
        LRController.load(path)


def test_an_incompatible_optimizer_is_refused():
    weight, optimizer = quadratic_optimizer(kind=torch.optim.SGD)
    with pytest.raises(MetahpoError, match="meta-trained with Adam/AdamW, not SGD"):
        LRController().schedule(optimizer, 10)


def test_adam_hd_raises_the_rate_while_the_gradient_keeps_its_direction():
    weight = torch.nn.Parameter(torch.full((8,), 5.0))
    optimizer = AdamHD([weight], lr=1e-3, hypergrad_lr=1e-4)
    for _ in range(20):
        optimizer.zero_grad()
        (weight**2).sum().backward()
        optimizer.step()
    assert optimizer.param_groups[0]["lr"] > 1e-3  # far from the minimum: successive steps agree
    plain = torch.nn.Parameter(torch.full((8,), 5.0))
    adam = AdamHD([plain], lr=1e-3, hypergrad_lr=0.0)
    reference = torch.nn.Parameter(torch.full((8,), 5.0))
    torch_adam = torch.optim.Adam([reference], lr=1e-3)
    for _ in range(5):
        for p, opt in ((plain, adam), (reference, torch_adam)):
            opt.zero_grad()
            (p**2).sum().backward()
            opt.step()
    assert torch.allclose(plain, reference, atol=1e-6)  # hypergrad_lr 0 is Adam


@pytest.mark.parametrize("method", METHODS.names())
def test_every_method_trains_and_traces(digits_task, method):
    inputs = MethodInputs(oracle_lr=3e-3, recommended_lr=1e-2, controller=rising_controller(), validate_every=10)
    policy = METHODS.get(method).policy(inputs)
    result = train_model(digits_task.family, digits_task.data, digits_task.config, epochs=1, seed=0, device="cpu",
                         options=digits_task.options, policy=policy, max_steps=40)  # fmt: skip
    assert result.ok, result.message
    assert [p["step"] for p in result.trace] == [0, 10, 20, 30, 40]
    lrs = [p["lr"] for p in result.trace]
    expected_start = {"oracle": 3e-3, "cosine": 3e-3, "plateau": 3e-3, "recommended": 1e-2, "schedulefree": 0.0025}
    if method in expected_start:
        assert lrs[0] == pytest.approx(expected_start[method])
    if method == "cosine":
        assert lrs[-1] == pytest.approx(0.0, abs=1e-12)
    if method == "meta":
        assert lrs[1] == pytest.approx(2e-3, rel=1e-4) and lrs[-1] == pytest.approx(1.6e-2, rel=1e-3)
    assert result.trace[-1]["val_metric"] > 0.3  # it learned something in 40 steps


def test_a_method_without_its_input_is_refused():
    with pytest.raises(MetahpoError, match="'cosine' needs oracle_lr"):
        METHODS.get("cosine").policy(MethodInputs())


def test_a_controller_that_drives_the_loss_to_nan_is_a_diverged_run(digits_task):
    config = ControllerConfig(every=1, max_change=1e6, lr_max=1e38)
    policy = METHODS.get("meta").policy(MethodInputs(controller=rising_controller(config)))
    result = train_model(digits_task.family, digits_task.data, digits_task.config, epochs=1, seed=0, device="cpu",
                         options=digits_task.options, policy=policy, max_steps=30)  # fmt: skip
    assert result.state == "diverged" and "became" in result.message


def es(iterations: int) -> ESSettings:
    return ESSettings(iterations=iterations, population=2, sigma=0.1, meta_lr=0.05, steps=12, base_lr=1e-3,
                      validate_every=2, checkpoint_every=1, trace_every=4)  # fmt: skip


@pytest.mark.slow
def test_meta_training_resumes_to_the_same_controller(digits_task, tmp_path):
    config = ControllerConfig(hidden=4, every=4)
    whole = meta_train([digits_task], config, es(4), 0, torch.device("cpu"), tmp_path / "whole.safetensors")
    # "killed" after 2 iterations: the checkpoint holds them; the rerun does the other 2
    checkpoint = tmp_path / "resumed.safetensors"
    meta_train([digits_task], config, es(2), 0, torch.device("cpu"), checkpoint)
    resumed = meta_train([digits_task], config, es(4), 0, torch.device("cpu"), checkpoint)
    assert torch.equal(resumed.controller.vector(), whole.controller.vector())
    def scores(history):
        return [{k: v for k, v in record.items() if k != "seconds"} for record in history]

    assert scores(resumed.history) == scores(whole.history) and resumed.runs == whole.runs == 4 * 2 + 2 * 2
    assert [r["iteration"] for r in whole.history if "validation_score" in r] == [2, 4]
    assert whole.best_iteration in (2, 4) and not torch.equal(whole.controller.vector(), LRController(config).vector())


@pytest.mark.slow
def test_readout_meta_training_moves_the_head_only(digits_task, tmp_path):
    config = ControllerConfig(hidden=4, every=4)
    torch.manual_seed(0)  # meta_train seeds torch with its seed before building the controller
    start = LRController(config).vector()
    trained = meta_train([digits_task], config, replace(es(2), learn="readout"), 0, torch.device("cpu"),
                         tmp_path / "readout.safetensors").controller  # fmt: skip
    mask = trained.readout()
    assert int(mask.sum()) == 4 + len(config.features) + 1  # [h, features] -> 1
    assert torch.equal(trained.vector()[~mask], start[~mask])
    assert not torch.equal(trained.vector()[mask], start[mask])


def trace_frame(steps_by_run: dict[tuple[str, int], list[float]]) -> pd.DataFrame:
    rows = []
    for (method, seed), metrics in steps_by_run.items():
        for i, metric in enumerate(metrics):
            rows.append({"task": "t", "method": method, "seed": seed, "step": 10 * i, "val_metric": metric, "seconds": float(i)})
    return pd.DataFrame(rows)


def test_steps_to_threshold_ratios_and_the_oracle():
    traces = trace_frame({("meta", 0): [0.1, 0.9, 0.95], ("meta", 1): [0.1, 0.5, 0.95],
                          ("cosine", 0): [0.1, 0.5, 0.95], ("cosine", 1): [0.1, 0.2, 0.3]})  # fmt: skip
    assert steps_to_threshold(traces[(traces.method == "meta") & (traces.seed == 0)], 0.9) == 10
    assert steps_to_threshold(traces[(traces.method == "cosine") & (traces.seed == 1)], 0.9) is None
    runs = pd.DataFrame([{"task": "t", "method": m, "seed": s, "steps": 20, "steps_per_epoch": 5, "state": "ok"}
                         for m in ("meta", "cosine") for s in (0, 1)])  # fmt: skip
    table = threshold_table(runs, traces, {"t": 0.9})
    got = table.set_index(["method", "seed"])
    assert got.loc[("meta", 0), "steps_to_threshold"] == 10 and got.loc[("meta", 0), "epochs_to_threshold"] == 2
    assert math.isnan(got.loc[("cosine", 1), "steps_to_threshold"])
    ratios = {r["task"]: r for r in step_ratios(table, "meta", ["cosine"])}
    # seed 0: 10 / 20; seed 1: 20 / 20 (cosine never got there: censored at the 20-step budget)
    assert ratios["all"]["ratio"] == pytest.approx(math.sqrt(0.5)) and ratios["all"]["n"] == 2
    grid = pd.DataFrame({"lr_start": [1e-3, 1e-3, 1e-2, 1e-2, 1e-1], "final_val_metric": [0.8, 0.9, 0.9, 0.8, None]})
    assert oracle_lr(grid) == 1e-3  # a tie goes to the smaller rate; a diverged run counts as 0


def test_params_checks(default_params_raw):
    from metahpo.config import validate_params
    from metahpo.errors import ParamsError

    raw = default_params_raw
    assert validate_params(raw).lr_control.eval_tasks == ["digits-cnn", "digits-mlp"]
    bad = {**raw, "lr_control": {**raw["lr_control"], "eval_tasks": ["wine-mlp", "nope"]}}
    with pytest.raises(ParamsError) as error:
        validate_params(bad)
    text = str(error.value)
    assert "'nope' is not under tasks" in text and "['wine-mlp'] are meta-train tasks too" in text
    with pytest.raises(ParamsError, match=r"unknown learning-rate method\(s\) \['sgdr'\]"):
        validate_params({**raw, "lr_control": {**raw["lr_control"], "methods": ["meta", "sgdr"]}})
    odd = {**raw, "lr_control": {**raw["lr_control"], "meta_train": {"population": 5}}}
    with pytest.raises(ParamsError, match="odd"):
        validate_params(odd)
    meta_without = {**raw, "lr_control": None, "train_recommended": {**raw["train_recommended"], "lr_schedule": "meta"}}
    with pytest.raises(ParamsError, match="lr_schedule: meta needs an lr_control section"):
        validate_params(meta_without)



@pytest.fixture(scope="module")
def tiny_lr(tmp_path_factory):
    """The tiny profile's lr_meta and lr_eval, run in-process in a fresh folder."""
    import os
    from pathlib import Path

    from metahpo.stages import run_stage

    root = tmp_path_factory.mktemp("lr")
    (root / "params.yaml").write_text((Path(__file__).parent / "data" / "params_tiny.yaml").read_text())
    cwd = os.getcwd()
    os.chdir(root)
    try:
        for dataset in ("iris", "wine", "digits_150"):
            run_stage("download", "params.yaml", dataset)
        # lr_eval depends on fit_meta's recommendations; the tiny methods leave out "recommended", so it never
        # reads them and an empty set stands in for the sweeps and meta-model that would make them
        Path("results/meta").mkdir(parents=True)
        Path("results/meta/recommendations.json").write_text("{}")
        run_stage("lr_meta", "params.yaml")
        run_stage("lr_eval", "params.yaml")
    finally:
        os.chdir(cwd)
    return root


def _run_in(root, stage: str) -> None:
    import os

    from metahpo.stages import run_stage

    cwd = os.getcwd()
    os.chdir(root)
    try:
        run_stage(stage, "params.yaml")
    finally:
        os.chdir(cwd)


@pytest.mark.slow  # two ES iterations and 28 short runs: ~30 s
def test_lr_stages_write_their_outputs_and_resume_after_a_kill(tiny_lr, capsys):
    import json

    import yaml

    control = yaml.safe_load((tiny_lr / "params.yaml").read_text())["lr_control"]
    controller = LRController.load(tiny_lr / "results/lr_meta/controller")
    assert controller.config.hidden == 4 and controller.provenance["tasks"] == ["iris-mlp"]
    manifest = json.loads((tiny_lr / "results/lr_meta/controller/meta_training.json").read_text())
    assert [r["iteration"] for r in manifest["history"]] == [1, 2] and manifest["runs"] == 2 * 2 + 2 * 2
    runs = pd.read_parquet(tiny_lr / "results/lr_eval/runs.parquet")
    per_task = len(control["oracle_grid"]) + len(control["methods"])
    assert len(runs) == len(control["eval_tasks"]) * control["seeds"] * per_task
    summary = json.loads((tiny_lr / "results/lr_eval/summary.json").read_text())
    assert [t["task"] for t in summary["tasks"]] == control["eval_tasks"]
    assert {t["task"]: (t["unseen_dataset"], t["unseen_family"]) for t in summary["tasks"]} == {
        "digits_150-cnn": (True, True), "wine-mlp": (True, False)}  # fmt: skip
    assert {r["baseline"] for r in summary["ratios"]} == set(control["methods"]) - {"meta"}

    # killed part-way: half the log survives, its last line torn; the rerun redoes only the rest
    log = tiny_lr / "results/lr_eval/runs.partial.jsonl"
    lines = log.read_text().splitlines()
    kept = len(lines) // 2
    log.write_text("\n".join(lines[:kept]) + "\n" + lines[kept][: len(lines[kept]) // 2])
    (tiny_lr / "results/lr_eval/runs.parquet").unlink()
    _run_in(tiny_lr, "lr_eval")
    rerun = pd.read_parquet(tiny_lr / "results/lr_eval/runs.parquet")
    assert len(log.read_text().splitlines()) == len(lines)  # the torn line dropped, the rest recomputed once
    columns = [c for c in runs.columns if c != "seconds"]
    pd.testing.assert_frame_equal(rerun[columns], runs[columns])  # identical to the uninterrupted run

    # meta-training after success: the kept checkpoint is at the end, nothing is retrained
    capsys.readouterr()
    _run_in(tiny_lr, "lr_meta")
    assert "resuming from controller-" in capsys.readouterr().out
    assert torch.equal(LRController.load(tiny_lr / "results/lr_meta/controller").vector(), controller.vector())
