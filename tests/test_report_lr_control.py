"""The report's lr_control section, on synthetic lr_meta and lr_eval outputs."""

from __future__ import annotations

import base64
import copy
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metahpo.io import write_json, write_parquet
from metahpo.report import SECTIONS, figures
from metahpo.report.tables import MISSING
from report_pages import HOSTILE, block as _block, captioned as _captioned, page as _page, table_row
from report_pages import section as section_of
from report_pages import record_dot_figures, summary_row

ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
OFF = "The learning-rate controller is off in this profile (lr_control: null in the params)"

BASE_RAW = {
    "datasets": {"digits": {"source": "digits"}, "wine": {"source": "wine"}},
    "tasks": {"digits-mlp": {"dataset": "digits", "family": "mlp"}, "wine-mlp": {"dataset": "wine", "family": "mlp"},
              "digits-cnn": {"dataset": "digits", "family": "cnn"}},
    "families": {family: {"space": {"lr": {"values": [0.001, 0.01]}}, "default": {"lr": 0.001}}
                 for family in ("mlp", "cnn")},
    "report": {"title": "Learning-rate report test"},
}  # fmt: skip
METHODS = ("fixed", "cosine", "schedulefree", "meta")
EVAL_TASKS = ("wine-mlp", "digits-cnn")
LR_CONTROL_RAW = {
    "meta_train_tasks": ["digits-mlp"], "eval_tasks": list(EVAL_TASKS), "methods": list(METHODS), "steps": 40,
    "batch_size": 16, "base_lr": 0.001, "seeds": 2, "trace_every": 10, "threshold": 0.9, "oracle_grid": [0.001, 0.01],
    "meta_train": {"iterations": 4, "population": 4, "validate_every": 2, "hidden": 8, "every": 10, "max_change": 2.0},
}  # fmt: skip
GRID_RATES = (0.001, 0.01)
SEEDS = (0, 1)
STEPS = (0, 10, 20, 30, 40)
ORACLE = {"wine-mlp": 0.01, "digits-cnn": 0.001}
# a method's rate at step index k and seed s; cosine anneals to 0 (off a log axis), meta's seeds differ by 4x
RATE = {
    "fixed": lambda k, s: 0.001, "cosine": lambda k, s: 0.01 * (1 + np.cos(np.pi * k / 4)) / 2,
    "schedulefree": lambda k, s: 0.0025, "meta": lambda k, s: 0.001 * 2.0**k * 4.0**s,
}  # fmt: skip
VAL_START = {"fixed": 0.5, "cosine": 0.6, "schedulefree": 0.55, "meta": 0.7}  # + 0.05 per step index + 0.02 per seed



def _params(lr_control) -> dict:
    raw = copy.deepcopy(BASE_RAW)
    raw["lr_control"] = copy.deepcopy(lr_control)
    return raw


def _runs_frame() -> pd.DataFrame:
    rows = []

    def row(task, method, seed, lr, state="ok", message="", final=0.9):
        ok = state == "ok"
        rows.append({"task": task, "method": method, "seed": seed, "state": state, "message": message,
                     "lr_start": lr, "lr_end": lr, "steps": 40, "steps_per_epoch": 8,
                     "final_val_metric": final if ok else None, "auc": 0.8 if ok else None,
                     "test_accuracy": final if ok else None, "test_macro_precision": final if ok else None,
                     "test_macro_recall": final if ok else None, "test_macro_f1": final if ok else None,
                     "seconds": 1.5, "key": f"{task}/{method}/{seed}/{lr}"})  # fmt: skip

    for task in EVAL_TASKS:
        for seed in SEEDS:
            for method in METHODS:
                if (task, method, seed) == ("digits-cnn", "meta", 1):
                    row(task, method, seed, 0.001, state="diverged", message=f"loss is nan {HOSTILE}")
                else:
                    row(task, method, seed, RATE[method](0, seed))
            for lr in GRID_RATES:
                if (task, lr, seed) == ("wine-mlp", 0.001, 1):
                    row(task, "grid", seed, lr, state="oom", message="out of memory")
                else:  # wine-mlp: 0.001 -> 0.8, 0.01 -> 0.85 (+0.1 for seed 1)
                    row(task, "grid", seed, lr, final=0.8 + (5 * lr if task == "wine-mlp" else 0) + 0.1 * seed)
    return pd.DataFrame(rows)


def _traces_frame() -> pd.DataFrame:
    rows = []
    for task in EVAL_TASKS:
        for method in METHODS:
            for seed in SEEDS:
                for k, step in enumerate(STEPS):
                    rows.append({"task": task, "method": method, "seed": seed, "step": step, "epoch": step / 8,
                                 "lr": RATE[method](k, seed), "train_loss": np.nan if step == 0 else 1.0 / (k + 1),
                                 "val_loss": 1.0 / (k + 1), "val_metric": VAL_START[method] + 0.05 * k + 0.02 * seed,
                                 "seconds": 0.3 * k})  # fmt: skip
    return pd.DataFrame(rows)


def _table_row(task: str, method: str, steps: float, **extra) -> dict:
    row = {"task": task, "method": method, "seeds": 2, "diverged": 0, "reached": 2}
    values = {"steps_to_threshold": steps, "epochs_to_threshold": steps / 8, "seconds_to_threshold": steps / 100,
              "final_val_metric": 0.9, "auc": 0.8, "test_accuracy": 0.91, "test_macro_precision": 0.9,
              "test_macro_recall": 0.89, "test_macro_f1": 0.88, "seconds": 1.5}  # fmt: skip
    for key, value in values.items():
        row[key], row[f"{key}_ci"] = value, value / 10
    return {**row, **extra}


def _summary() -> dict:
    return {
        "enabled": True, "methods": [*METHODS, HOSTILE],
        "descriptions": {"fixed": "Adam at the seed's fixed 1e-3", "meta": "the meta-learned controller",
                         HOSTILE: f"a method from older results {HOSTILE}"},
        "seeds": 2, "steps": 40, "batch_size": 16, "trace_every": 10, "threshold": 0.9, "reference": "meta",
        "tasks": [
            {"task": "wine-mlp", "dataset": f"wine {HOSTILE}", "family": "mlp", "unseen_dataset": True,
             "unseen_family": False, "oracle_lr": 0.01, "recommended_lr": 0.003, "threshold_value": 0.855,
             "oracle_seconds": 12.34},
            {"task": "digits-cnn", "dataset": "digits", "family": "cnn", "unseen_dataset": False,
             "unseen_family": True, "oracle_lr": 0.001, "recommended_lr": None, "threshold_value": 0.81,
             "oracle_seconds": 20.0},
        ],
        "meta_train_tasks": ["digits-mlp"],
        "table": [  # not in display order: the section orders by "methods"
            _table_row("wine-mlp", "meta", 12.5, steps_to_threshold_ci=None),
            _table_row("wine-mlp", "fixed", 30.0, reached=1, epochs_to_threshold_ci=None),
            _table_row("wine-mlp", HOSTILE, 25.0),
            _table_row("wine-mlp", "cosine", 20.0),
            _table_row("digits-cnn", "meta", 20.0, diverged=1, reached=1, test_accuracy=None),
            _table_row("digits-cnn", "fixed", 40.0, reached=0, steps_to_threshold=None),
        ],
        "ratios": [
            {"task": "all", "baseline": "schedulefree", "n": 4, "ratio": 0.8123, "low": 0.7, "high": 0.95},
            {"task": "wine-mlp", "baseline": "cosine", "n": 2, "ratio": 1.05, "low": 0.8, "high": 1.3},
            {"task": "wine-mlp", "baseline": "schedulefree", "n": 2, "ratio": 0.7412, "low": 0.61, "high": 0.9},
            {"task": "digits-cnn", "baseline": "schedulefree", "n": 2, "ratio": 1.5, "low": 1.2, "high": 1.9},
            {"task": "all", "baseline": "cosine", "n": 4, "ratio": 1.1, "low": None, "high": None},
        ],
        "gaps": [{"task": "wine-mlp", "metric": "test_accuracy", "best": "cosine", "best_value": 0.93,
                  "value": 0.925, "gap_points": 0.5}],
        "targets": [
            {"name": "steps vs schedulefree", "value": 0.8123, "low": 0.7, "high": 0.95, "target": 0.8, "met": False},
            {"name": "steps vs cosine", "value": 0.9512, "low": 0.8, "high": 1.1, "target": 1.0, "met": True},
            {"name": "final accuracy gap (points)", "value": None, "target": 0.3, "met": None},
        ],
        "meta_training": {"seconds": 36.5, "runs": 24}, "device": "cpu",
    }  # fmt: skip


def _meta_training() -> dict:
    return {
        "enabled": True, "tasks": ["digits-mlp"], "eval_tasks": list(EVAL_TASKS),
        "config": {"features": ["log_lr", "train_loss_change"], "hidden": 8, "every": 10, "max_change": 2.0,
                   "lr_min": 1e-6, "lr_max": 1.0, "optimizers": ["Adam", "AdamW"]},
        "settings": {"iterations": 4, "population": 4, "sigma": 0.1, "meta_lr": 0.05, "steps": 40, "base_lr": 0.001,
                     "validate_every": 2, "checkpoint_every": 2, "trace_every": 10},
        "history": [
            {"iteration": 1, "population_score": 0.21, "seconds": 7.7},
            {"iteration": 2, "population_score": 0.19, "validation_score": 0.188, "seconds": 16.0},
            {"iteration": 3, "population_score": 0.2, "seconds": 25.1},
            {"iteration": 4, "population_score": 0.18, "validation_score": 0.2, "seconds": 36.5},
        ],
        "best_iteration": 2, "best_score": 0.188, "seconds": 36.5, "runs": 24, "parameters": 417, "device": "cpu",
    }  # fmt: skip


def _write_lr_results(root: Path) -> None:
    """The lr_meta and lr_eval stages' outputs (the shapes their stages write)."""
    write_json(root / "lr_meta" / "controller" / "meta_training.json", _meta_training())
    write_parquet(root / "lr_eval" / "runs.parquet", _runs_frame())
    write_parquet(root / "lr_eval" / "traces.parquet", _traces_frame())
    write_json(root / "lr_eval" / "summary.json", _summary())




def _build(tmp_path: Path, raw: dict, write=None) -> str:
    return section_of(_page(tmp_path, raw, write), "lr_control")





def _images(html: str) -> list[str]:
    return re.findall(r'<img\s+src="([^"]*)"', html)


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> str:
    return _page(tmp_path_factory.mktemp("lr_control"), _params(LR_CONTROL_RAW), _write_lr_results)


@pytest.fixture(scope="module")
def section(page) -> str:
    return section_of(page, "lr_control")


def test_lr_control_section_sits_between_selection_and_provenance(page):
    ids = SECTIONS.ids()
    assert ids.index("selection") + 1 == ids.index("lr_control") == ids.index("provenance") - 1
    assert page.index('<section id="selection">') < page.index('<section id="lr_control">') < page.index(
        '<section id="provenance">'
    )
    assert '<li><a href="#lr_control">Meta-learned learning-rate controller</a></li>' in page
    assert "<h2>Meta-learned learning-rate controller</h2>" in section_of(page, "lr_control")


def test_setup_lines_and_held_out_tasks(section):
    assert "Meta-train tasks: digits-mlp (datasets digits; families mlp); the methods are compared on" in section
    assert "Every run: 40 optimizer steps at batch size 16" in section and "2 seeds per method and task" in section
    assert "validation every 10 steps; run on cpu." in section
    assert "Threshold: 0.9 × the oracle&#39;s mean final validation metric" in section
    assert "an LSTM of 8 units reading log_lr, train_loss_change; every 10 steps" in section
    assert "between 1/2 and 2, kept within [1e-06, 1]" in section
    held_out = _captioned(section, "the held-out tasks")
    # dataset, its dataset, family, its family, oracle lr, recommended lr, threshold, grid seconds
    assert table_row(held_out, "wine-mlp") == [f"wine {ESCAPED}", "unseen", "mlp", "seen in meta-training",
                                                  "0.01", "0.003", "0.855", "12.3"]  # fmt: skip
    assert table_row(held_out, "digits-cnn") == ["digits", "seen in meta-training", "cnn", "unseen", "0.001",
                                                    MISSING, "0.810", "20.0"]  # fmt: skip
    methods = _captioned(section, "the methods compared")
    assert table_row(methods, "fixed") == ["Adam at the seed&#39;s fixed 1e-3"]
    assert table_row(methods, "cosine") == [MISSING]  # no description in the summary
    assert table_row(methods, ESCAPED) == [f"a method from older results {ESCAPED}"]
    positions = [methods.index(f"<tr><td>{name}</td>") for name in (*METHODS, ESCAPED)]
    assert positions == sorted(positions)


def test_targets_are_stated_plainly(section):
    block = _block(section, "lr_control-targets")
    targets = _captioned(block, "the targets")
    # value, 95% CI, goal, verdict
    assert table_row(targets, "steps vs schedulefree") == ["0.81", "[0.70, 0.95]", "≤ 0.8", "not met"]
    assert table_row(targets, "steps vs cosine") == ["0.95", "[0.80, 1.10]", "≤ 1", "met"]
    assert table_row(targets, "final accuracy gap (points)") == [MISSING, MISSING, "≤ 0.3", "not measured"]
    assert ("1 of 3 targets met; met: steps vs cosine; not met: steps vs schedulefree; not measured: final accuracy "
            "gap (points).") in block  # fmt: skip


def test_per_task_tables_in_method_order(section):
    wine = _block(section, "lr_control-wine-mlp")
    steps = _captioned(wine, "wine-mlp: time to 0.9")
    # seeds, did not finish, reached, steps, epochs, seconds to threshold, run seconds
    assert table_row(steps, "meta") == ["2", "0", "2/2", "12.5", "1.56 ±0.16", "0.12 ±0.01", "1.50 ±0.15"]
    assert table_row(steps, "fixed")[2:5] == ["1/2", "30.0 ±3.0", "3.75"]  # a null half-width: the mean alone
    positions = [steps.index(f"<tr><td>{name}</td>") for name in ("fixed", "cosine", "meta", ESCAPED)]
    assert positions == sorted(positions)  # the summary's method order, not its table's
    final = _captioned(wine, "wine-mlp: the metrics at the end of the budget")
    # final val metric, mean val metric, test accuracy, precision, recall, F1
    assert table_row(final, "cosine") == ["0.900 ±0.090", "0.800 ±0.080", "0.910 ±0.091", "0.900 ±0.090",
                                             "0.890 ±0.089", "0.880 ±0.088"]  # fmt: skip
    assert ("Oracle grid, fixed-rate Adam, mean final validation metric over seeds: 0.001: 0.805 (1 of 2 runs did "
            "not finish); 0.01: 0.900 (the oracle).") in wine  # fmt: skip
    assert "grid at lr 0.001, seed 1: oom: out of memory" in wine
    assert ("Final test accuracy: meta 0.925, the best other method (cosine) 0.930: meta is 0.50 points behind "
            "it.") in wine  # fmt: skip
    cnn = _block(section, "lr_control-digits-cnn")
    cnn_steps = _captioned(cnn, "digits-cnn: time to 0.9")
    assert table_row(cnn_steps, "meta")[:3] == ["2", "1", "1/2"]
    assert table_row(cnn_steps, "fixed")[2:4] == ["0/2", MISSING]
    assert table_row(_captioned(cnn, "digits-cnn: the metrics"), "meta")[2] == MISSING
    assert f"meta, seed 1: diverged: loss is nan {ESCAPED}" in cnn


def test_trajectories_are_drawn_per_task(tmp_path, monkeypatch):
    drawn = []
    original = figures.lines_figure

    def spy(curves, xlabel, ylabel, log_y=False, threshold=None):
        drawn.append((curves, xlabel, ylabel, log_y, threshold))
        return original(curves, xlabel, ylabel, log_y, threshold)

    monkeypatch.setattr(figures, "lines_figure", spy)
    section = _build(tmp_path, _params(LR_CONTROL_RAW), _write_lr_results)
    assert len(drawn) == 2 * len(EVAL_TASKS) + 1  # rate and validation per task, the meta-training curve
    (lr_curves, _, lr_label, log_y, lr_threshold), (val_curves, _, val_label, val_log, threshold) = drawn[:2]
    assert (lr_label, log_y, lr_threshold) == ("learning rate", True, None)
    assert (val_label, val_log, threshold) == ("val metric", False, pytest.approx(0.855))
    assert [curve["label"] for curve in lr_curves] == list(METHODS)
    by_method = {curve["label"]: curve for curve in lr_curves}
    assert list(by_method["meta"]["x"]) == list(STEPS)
    # the geometric mean of the two seeds' rates, 4x apart: 2x seed 0's
    assert np.asarray(by_method["meta"]["y"]) == pytest.approx([0.002 * 2.0**k for k in range(len(STEPS))])
    assert np.isnan(np.asarray(by_method["cosine"]["y"])[-1])  # annealed to 0: off the log axis
    assert len({curve["color"] for curve in lr_curves}) == len(METHODS)
    val = {curve["label"]: np.asarray(curve["y"]) for curve in val_curves}
    assert val["fixed"] == pytest.approx([0.51 + 0.05 * k for k in range(len(STEPS))])  # the mean over seeds
    assert [curve["color"] for curve in val_curves] == [curve["color"] for curve in lr_curves]
    training_curves = drawn[-1][0]
    assert [curve["label"] for curve in training_curves][1:] == ["meta-validation", "kept"]
    assert training_curves[1]["y"] == [0.188, 0.2]
    assert (training_curves[2]["x"], training_curves[2]["y"]) == ([2], [0.188])  # the star: the kept iteration
    for task in EVAL_TASKS:
        sources = _images(_block(section, f"lr_control-{task}"))
        assert len(sources) == 2
        assert all(base64.b64decode(uri.split(",", 1)[1]).startswith(PNG_SIGNATURE) for uri in sources)
    assert len(_images(_block(section, "lr_control-meta-training"))) == 1


def test_summary_reads_the_step_ratio_table(page):
    """The headline is the ratio table's "all" row, against the first baseline (in method order) with an interval."""
    ratios = _captioned(_block(section_of(page, "lr_control"), "lr_control-ratios"), "steps to threshold, meta")
    figure, sentence, link = summary_row(page, "Learning-rate controller")
    schedulefree, cosine = _ratio_cells(ratios, "all", "schedulefree"), _ratio_cells(ratios, "all", "cosine")
    assert link == "lr_control-ratios" and figure == f"{schedulefree[1]} {schedulefree[2]}" == "0.81 [0.70, 0.95]"
    assert f"needs {figure} times schedulefree&#39;s steps" in sentence
    assert sentence.endswith(f"; against cosine: {cosine[1]}.")  # no interval in the table, none here


def test_step_ratio_table(section):
    block = _block(section, "lr_control-ratios")
    ratios = _captioned(block, "steps to threshold, meta / each baseline")
    rows = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td>", ratios)
    assert rows == [("wine-mlp", "cosine"), ("wine-mlp", "schedulefree"), ("digits-cnn", "schedulefree"),
                    ("all", "cosine"), ("all", "schedulefree")]  # tasks then all; baselines in method order
    # paired runs, ratio, interval, reading
    assert _ratio_cells(ratios, "wine-mlp", "schedulefree") == ["2", "0.74", "[0.61, 0.90]", "meta fewer steps"]
    assert _ratio_cells(ratios, "digits-cnn", "schedulefree")[1:] == ["1.50", "[1.20, 1.90]", "meta more steps"]
    assert _ratio_cells(ratios, "wine-mlp", "cosine")[3] == "no clear difference"  # the interval holds 1
    assert _ratio_cells(ratios, "all", "cosine") == ["4", "1.10", MISSING, MISSING]  # no interval: no reading
    assert "Below 1 the controller reaches the threshold in fewer steps" in block


def test_step_ratio_figure_plots_the_table(tmp_path, monkeypatch):
    """One panel per task then all, one row per baseline: each dot and bar the ratio table's cells, drawn above it."""
    drawn = record_dot_figures(monkeypatch)
    section = _build(tmp_path, _params(LR_CONTROL_RAW), _write_lr_results)
    (panels, share_x), = drawn
    assert share_x and [panel["title"] for panel in panels] == ["wine-mlp", "digits-cnn", "all held-out tasks"]
    assert all(panel["log_x"] and panel["reference"] == 1.0 and panel["xlabel"] == "meta / baseline steps"
               for panel in panels)  # fmt: skip
    block = _block(section, "lr_control-ratios")
    ratios = _captioned(block, "steps to threshold, meta / each baseline")
    summary = {(row["task"], row["baseline"]): row for row in _summary()["ratios"]}
    plotted = []
    for panel, task in zip(panels, ("wine-mlp", "digits-cnn", "all")):
        for row in panel["rows"]:
            plotted.append((task, row["label"]))
            cells = _ratio_cells(ratios, task, row["label"])
            assert f"{row['value']:.2f}" == cells[1]
            assert cells[2] == (MISSING if np.isnan(row["low"]) else f"[{row['low']:.2f}, {row['high']:.2f}]")
            expected = summary[(task, row["label"])]
            assert row["value"] == expected["ratio"]
            for key in ("low", "high"):  # a null bound in the summary: NaN, no bar
                assert row[key] == expected[key] if expected[key] is not None else np.isnan(row[key])
    assert plotted == re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td>", ratios)  # every table row, in its order
    colors = {row["label"]: row["color"] for panel in panels for row in panel["rows"]}
    assert colors == {"cosine": "C1", "schedulefree": "C2"}  # the baselines' colours in the task figures
    sources = _images(block)
    assert len(sources) == 1 and base64.b64decode(sources[0].split(",", 1)[1]).startswith(PNG_SIGNATURE)
    assert block.index("<img") < block.index("<caption>steps to threshold")


def test_step_ratios_without_a_value_draw_no_figure(tmp_path):
    def valueless(root: Path) -> None:
        _write_lr_results(root)
        ratios = [{**row, "ratio": None, "low": None, "high": None} for row in _summary()["ratios"]]
        write_json(root / "lr_eval" / "summary.json", {**_summary(), "ratios": ratios})

    block = _block(_build(tmp_path, _params(LR_CONTROL_RAW), valueless), "lr_control-ratios")
    assert _ratio_cells(block, "wine-mlp", "cosine") == ["2", MISSING, MISSING, MISSING]
    assert _images(block) == []


def test_interval_dot_figure_is_a_deterministic_png():
    rows = [{"label": "a", "value": 0.8, "low": 0.6, "high": 0.95, "color": "C1"},
            {"label": "b", "value": 1.4, "low": np.nan, "high": np.nan}]  # fmt: skip
    panels = [{"title": "t", "xlabel": "ratio", "log_x": True, "reference": 1.0, "rows": rows},
              {"xlabel": "x", "log_x": False, "rows": [{"label": "c", "value": -0.2, "low": -0.5, "high": 0.1}]}]
    uri = figures.interval_dot_figure(panels)
    assert uri == figures.interval_dot_figure(panels) != figures.interval_dot_figure(panels[:1])
    assert base64.b64decode(uri.split(",", 1)[1]).startswith(PNG_SIGNATURE)


def _ratio_cells(html: str, task: str, baseline: str) -> list[str]:
    row = re.search(rf"<tr><td>{re.escape(task)}</td><td>{re.escape(baseline)}</td>(.*?)</tr>", html, re.S)
    assert row, (task, baseline)
    return re.findall(r"<td[^>]*>(.*?)</td>", row.group(1))


def test_meta_training_cost(section):
    block = _block(section, "lr_control-meta-training")
    assert ("Evolution strategies: 4 iterations of 4 perturbed controllers (σ 0.1, Adam at 0.05 on the controller's "
            "417 weights), each a 40-step training run; the controller kept is the one of iteration 2, "
            "meta-validation score 0.188.") in block.replace("&#39;", "'")  # fmt: skip
    cost = _captioned(block, "what the rates cost before the comparison")
    assert table_row(cost, "meta-training the controller (once, on digits-mlp)") == ["24", "36.5", "cpu"]
    assert table_row(cost, "the oracle&#39;s grid on wine-mlp") == ["4", "12.3", "cpu"]  # 2 rates x 2 seeds
    assert table_row(cost, "the oracle&#39;s grid on digits-cnn") == ["4", "20.0", "cpu"]


def test_lr_control_off_in_the_profile_is_said(tmp_path):
    section = _build(tmp_path, copy.deepcopy(BASE_RAW))
    assert OFF in section and "<img" not in section and "<table" not in section and "not available" not in section
    # a summary written with the capability off, read with it on, says so too
    stale = _build(tmp_path / "stale", _params(LR_CONTROL_RAW),
                   lambda root: write_json(root / "lr_eval" / "summary.json", {"enabled": False}))  # fmt: skip
    assert OFF in stale and "<img" not in stale and "<table" not in stale


def test_missing_outputs_become_notes(tmp_path):
    section = _build(tmp_path, _params(LR_CONTROL_RAW))
    for stage in ("lr_eval", "lr_meta"):
        assert f"not available: results/{stage}/ not found (run the {stage} stage)" in section
    assert "<img" not in section
    assert "Meta-train tasks: digits-mlp" in section  # the setup still comes from the params
    held_out = _captioned(section, "the held-out tasks")  # and the held-out tasks, with what ran as dashes
    assert table_row(held_out, "wine-mlp") == ["wine", "unseen", "mlp", "seen in meta-training"] + [MISSING] * 4
    assert table_row(held_out, "digits-cnn")[:4] == ["digits", "seen in meta-training", "cnn", "unseen"]
    assert "<caption>the targets" not in section and "<caption>steps to threshold" not in section
    assert 'id="lr_control-wine-mlp"' not in section  # no per-task block without a single lr_eval output

    def without_traces_and_summary(root: Path) -> None:
        _write_lr_results(root)
        (root / "lr_eval" / "traces.parquet").unlink()
        (root / "lr_eval" / "summary.json").write_text("{not json", encoding="utf-8")
        write_json(root / "lr_meta" / "controller" / "meta_training.json", {"enabled": False})

    partial = _build(tmp_path / "partial", _params(LR_CONTROL_RAW), without_traces_and_summary)
    assert "not available: results/lr_eval/traces.parquet not found (run the lr_eval stage)" in partial
    assert "not available: results/lr_eval/summary.json could not be read (JSONDecodeError" in partial
    assert "lr_meta ran with lr_control: null: no controller was meta-trained (rerun the lr_meta stage)" in partial
    assert "<img" not in partial and "<caption>the targets" not in partial
    assert "0.01: 0.900 (the oracle)" not in partial  # without the summary, no oracle rate to mark
    assert "0.01: 0.900." in partial  # but the grid still comes from runs.parquet


def test_damaged_inputs_become_notes(tmp_path):
    def damaged(root: Path) -> None:
        _write_lr_results(root)
        write_parquet(root / "lr_eval" / "traces.parquet", _traces_frame().drop(columns=["lr"]))
        write_json(root / "lr_eval" / "summary.json", {**_summary(), "ratios": "not a list", "targets": [],
                                                       "table": [row for row in _summary()["table"]
                                                                 if row["task"] == "wine-mlp"]})  # fmt: skip
        history = {**_meta_training(), "history": []}
        write_json(root / "lr_meta" / "controller" / "meta_training.json", history)

    section = _build(tmp_path, _params(LR_CONTROL_RAW), damaged)
    assert "not available: results/lr_eval/traces.parquet lacks columns lr" in section
    assert "not available: lr_eval/summary.json has no step ratios" in section
    assert "not available: lr_eval/summary.json has no targets" in section
    assert "not available: lr_eval/summary.json has no table rows for digits-cnn" in section
    assert "not available: lr_meta/controller/meta_training.json has no history" in section
    assert "<img" not in section and "<caption>wine-mlp: time to 0.9" in section  # no ratio figure either


def test_lines_figure_is_a_deterministic_png():
    curves = [
        {"label": "a", "color": "C0", "x": [0, 10, 20], "y": [1e-3, 2e-3, 0.0]},
        {"label": "b", "color": "C1", "x": [0, 10], "y": [np.nan, 5e-4], "style": {"linestyle": "--"}},
    ]
    log = figures.lines_figure(curves, "step", "lr", log_y=True)
    assert log == figures.lines_figure(curves, "step", "lr", log_y=True)
    assert log != figures.lines_figure(curves, "step", "lr", threshold=1e-3)
    for uri in (log, figures.lines_figure([], "step", "lr", log_y=True)):  # nothing to plot: still a figure
        assert uri.startswith("data:image/png;base64,")
        assert base64.b64decode(uri.split(",", 1)[1]).startswith(PNG_SIGNATURE)


def test_the_stage_outputs_the_section_reads_are_report_deps():
    from metahpo import pipeline

    deps = set(pipeline.STAGE_BY_NAME["report"].deps)
    read = {"results/lr_meta/controller", "results/lr_eval/runs.parquet", "results/lr_eval/traces.parquet",
            "results/lr_eval/summary.json"}  # fmt: skip
    assert read <= deps, sorted(read - deps)
