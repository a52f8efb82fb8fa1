"""The few-shot section: meta-learned initializations against baselines on the same meta-test episodes.

Reads the fewshot_eval stage (``fewshot/summary.json``: the comparison table, the meta-training
cost, the transfer task; ``fewshot/curves.parquet``: scores per adaptation step) and the meta_init
stage (``meta_init/inits/<init>.json``: each initialization's meta-training curve and cost).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import numpy as np
import pandas as pd

from metahpo.report import figures
from metahpo.report.common import display_order, fewshot_table, stage_object, with_ci
from metahpo.report.inputs import ResultsTree
from metahpo.report.section import SECTIONS, ReportInputs, Section
from metahpo.report.tables import (
    MISSING,
    Table,
    fmt_fixed,
    fmt_int,
    fmt_metric,
    fmt_number,
    fmt_seconds,
    is_missing,
)

if TYPE_CHECKING:  # annotations only: the library never imports the params module
    from metahpo.config import FewShotParams


REFERENCE = "random_init"  # the transfer table's steps are compared with training from scratch
OFF_NOTE = (
    "The few-shot capability is off in this profile (fewshot: null in the params): no initialization "
    "was meta-trained and no episode was evaluated."
)
NOT_REACHED = "not reached"


def build(inputs: ReportInputs) -> dict:
    data = {"off": None, "setup": [], "comparison_notes": [], "curves_figure": None, "settings": [],
            "training_notes": [], "training_figure": None, "cost": None, "transfer_notes": [], "transfer_table": None,
            "transfer_figure": None}  # fmt: skip
    fewshot, results = inputs.params.fewshot, inputs.results
    summary, summary_note = _summary(results)
    if fewshot is None or (summary is not None and summary.get("enabled") is False):
        return {**data, "off": OFF_NOTE}
    data["setup"] = _setup(fewshot, summary)
    data.update(_comparison(fewshot, results, summary, summary_note))
    data.update(_meta_training(fewshot, results, summary))
    data.update(_transfer(fewshot, summary, summary_note))
    return data


def _summary(results: ResultsTree) -> tuple[Optional[dict], Optional[str]]:
    return stage_object(results, "fewshot_eval", results.fewshot_summary, "fewshot/summary.json")


def _setup(fewshot: FewShotParams, summary: Optional[dict]) -> list[str]:
    """How the problem was posed, from the params (and the device from the summary)."""
    split, train, evaluate = fewshot.split, fewshot.meta_train, fewshot.evaluate
    held_out = f"{len(split.test)} held out for meta-testing ({', '.join(split.test)})"
    validation = f"{len(split.validation)} for meta-validation" if split.validation else "none for meta-validation"
    rotations = "; meta-train classes x4 by 90-degree rotations" if fewshot.rotations else ""
    order = "second order" if train.second_order else "first order"
    device = (summary or {}).get("device")
    return [
        f"Classes of {', '.join(fewshot.datasets)} split by {split.by}: {held_out}, {validation}, every other "
        f"one meta-trains{rotations}.",
        f"Learner: Conv-4, {fewshot.filters} filters. Meta-training: {train.ways}-way {train.shots}-shot episodes, "
        f"{train.queries} queries per class, {train.iterations} iterations of {train.meta_batch} episodes, inner "
        f"lr {fmt_number(train.inner_lr)}, {train.inner_steps} inner steps ({order} where it applies).",
        f"Meta-test: {evaluate.episodes} episodes per setting (the same episodes for every method), "
        f"{evaluate.queries} queries per class, {evaluate.steps} adaptation steps at lr "
        f"{fmt_number(train.inner_lr)}; threshold {fmt_number(evaluate.threshold)} mean query accuracy"
        + (f"; evaluated on {device}." if device else "."),
    ]


def _method_color(method: str, methods: list[str]) -> str:
    """A method has the same colour in every figure of the section: its place in fewshot.methods
    (a method of older results, no longer listed, takes the next colour)."""
    return f"C{(methods.index(method) if method in methods else len(methods)) % 10}"


def _init_color(init: str, order: list[str]) -> str:
    return f"C{order.index(init) % 10}"


def _comparison(fewshot: FewShotParams, results: ResultsTree, summary: Optional[dict], summary_note) -> dict:
    notes = [summary_note] if summary_note else []
    table, table_notes = fewshot_table(summary)
    notes += table_notes
    meta_learned = _meta_learned(table)
    curves, curves_note = (None, None) if results.missing_stage("fewshot_eval") else results.fewshot_curves()
    if curves_note:
        notes.append(curves_note)
    threshold = (summary or {}).get("threshold", fewshot.evaluate.threshold)
    setting_names = [setting.name for setting in fewshot.evaluate.settings]
    present = set(table["setting"]) if len(table) else set()
    if curves is not None:
        present |= set(curves["setting"])
    blocks = []
    for setting in display_order(present, setting_names):
        rows_of = table[table["setting"] == setting] if len(table) else table
        curves_of = curves[curves["setting"] == setting] if curves is not None else None
        blocks.append(
            {
                "setting": setting,
                "notes": [] if len(rows_of) or not len(table) else [f"not available: no table rows for {setting}"],
                "table": _setting_table(setting, rows_of, curves_of, fewshot, threshold) if len(rows_of) else None,
            }
        )
    figure = None
    if curves is not None and len(curves):
        figure = figures.step_curves_figure(
            _curve_panels(curves, display_order(present, setting_names), fewshot, meta_learned),
            "query accuracy", threshold=None if is_missing(threshold) else float(threshold),
        )  # fmt: skip
    elif curves is not None:
        notes.append("not available: fewshot/curves.parquet has no rows")
    return {"comparison_notes": notes, "curves_figure": figure, "settings": blocks}


def _meta_learned(table: pd.DataFrame) -> dict[str, bool]:
    if not len(table) or "meta_learned" not in table.columns:
        return {}
    return {str(m): bool(v) for m, v in zip(table["method"], table["meta_learned"]) if not is_missing(v)}


def _milliseconds(seconds: Any) -> str:
    return MISSING if is_missing(seconds) else fmt_fixed(1000 * float(seconds), 1)


def _setting_table(setting: str, rows: pd.DataFrame, curves: Optional[pd.DataFrame], fewshot: FewShotParams,
                   threshold: Any) -> Table:  # fmt: skip
    """One setting's comparison: every method after k steps, the best mean accuracy marked."""
    target = fmt_number(threshold)
    columns = [
        ("method", False), ("kind", False), ("accuracy ±95% CI", True), ("macro-F1 ±95% CI", True), ("steps k", True),
        (f"steps to ≥{target}", True), (f"adaptation ms to ≥{target}", True), ("adaptation ms, k steps", True),
        ("episodes", True), ("best", False),
    ]  # fmt: skip
    by_method = {str(row["method"]): row for row in rows.to_dict("records")}
    accuracies = {m: float(r["accuracy"]) for m, r in by_method.items() if not is_missing(r.get("accuracy"))}
    best = max(accuracies, key=lambda m: accuracies[m]) if accuracies else None
    best_low = accuracies[best] - _half(by_method[best].get("accuracy_ci")) if best else None
    order = display_order(by_method, fewshot.methods)
    table_rows = []
    for method in order:
        row = by_method[method]
        learned = row.get("meta_learned")
        kind = MISSING if is_missing(learned) else ("meta-learned" if learned else "baseline")
        reached = not is_missing(row.get("steps_to_threshold"))
        last_seconds = MISSING
        if curves is not None:
            of_method = curves[curves["method"] == method].sort_values("step")
            if len(of_method):
                last_seconds = _milliseconds(of_method["seconds"].iloc[-1])
        mark = ""
        if method == best:
            mark = "best"
        elif method in accuracies and accuracies[method] + _half(row.get("accuracy_ci")) >= best_low:
            mark = "CI overlaps best"
        table_rows.append(
            [
                method, kind, with_ci(row.get("accuracy"), row.get("accuracy_ci")),
                with_ci(row.get("macro_f1"), row.get("macro_f1_ci")), fmt_int(row.get("steps")),
                fmt_int(row["steps_to_threshold"]) if reached else NOT_REACHED,
                _milliseconds(row.get("seconds_to_threshold")) if reached else NOT_REACHED,
                last_seconds, fmt_int(row.get("episodes")), mark,
            ]
        )  # fmt: skip
    caption = f"{setting}: query scores after k adaptation steps, mean ±1.96 standard errors over the episodes"
    return Table.build(columns, table_rows, caption=caption)


def _half(value: Any) -> float:
    return 0.0 if is_missing(value) else float(value)


def _curve_panels(curves: pd.DataFrame, settings: list[str], fewshot: FewShotParams,
                  meta_learned: dict[str, bool]) -> list[dict]:  # fmt: skip
    order = display_order(curves["method"], fewshot.methods)
    panels = []
    for setting in settings:
        of_setting = curves[curves["setting"] == setting]
        panel_curves = []
        for method in display_order(of_setting["method"], order):
            rows = of_setting[of_setting["method"] == method].sort_values("step")
            mean = rows["accuracy"].to_numpy(dtype=float)
            half = rows["accuracy_ci"].to_numpy(dtype=float)
            panel_curves.append(
                {
                    "label": method if method not in meta_learned or meta_learned[method] else f"{method} (baseline)",
                    "color": _method_color(method, list(fewshot.methods)), "dashed": meta_learned.get(method) is False,
                    "x": rows["step"].to_numpy(dtype=float), "mean": mean, "low": mean - half, "high": mean + half,
                }
            )  # fmt: skip
        panels.append({"title": setting, "curves": panel_curves})
    return panels


def _meta_training(fewshot: FewShotParams, results: ResultsTree, summary: Optional[dict]) -> dict:
    """Each initialization's meta-training curve and cost: its ``<init>.json``, else the summary's figures."""
    stage_note = results.missing_stage("meta_init")
    notes = [stage_note] if stage_note else []
    manifest = None
    if not stage_note:
        manifest, manifest_note = results.meta_inits()
        if manifest_note:
            notes.append(manifest_note)
        elif not isinstance(manifest, dict) or not isinstance(manifest.get("inits", {}), dict):
            notes.append("not available: meta_init/inits/inits.json is not a manifest")
            manifest = None
        elif manifest.get("enabled") is False:
            notes.append("meta_init ran with fewshot: null: no initialization was trained (rerun the meta_init stage)")
    from_summary = (summary or {}).get("meta_training")
    from_summary = from_summary if isinstance(from_summary, dict) else {}
    listed = (manifest or {}).get("order")
    listed = [str(name) for name in listed] if isinstance(listed, list) else []
    names = [str(name) for name in (manifest or {}).get("inits", {})] + [str(name) for name in from_summary]
    order = display_order(names, listed)  # the manifest's order: meta_init trains them in fewshot.methods order
    configs = {}
    if manifest is not None:
        for init in order:
            if init not in manifest.get("inits", {}):
                continue
            config, note = results.meta_init_config(init)
            if config is None or not isinstance(config, dict):
                notes.append(f"{init}: {note or 'not available: its config is not an object'}")
            else:
                configs[init] = config
    if not order:
        if not notes:
            notes.append("no initialization was meta-trained: every method in fewshot.methods is trained from scratch")
        return {"training_notes": notes, "training_figure": None, "cost": None}
    curves = [_training_curve(init, config, order) for init, config in configs.items()]
    curves = [curve for curve in curves if curve is not None]
    figure = figures.meta_training_figure(curves) if curves else None
    if configs and not curves:
        notes.append("not available: no initialization's config holds a meta-training history")
    return {"training_notes": notes, "training_figure": figure,
            "cost": _cost_table(order, configs, from_summary, manifest)}  # fmt: skip


def _history(config: dict) -> list[dict]:
    history = config.get("history")
    return [record for record in history if isinstance(record, dict)] if isinstance(history, list) else []


def _training_curve(init: str, config: dict, order: list[str]) -> Optional[dict]:
    history = [r for r in _history(config) if not is_missing(r.get("iteration")) and not is_missing(r.get("loss"))]
    if not history:
        return None
    validated = [r for r in _history(config) if not is_missing(r.get("val_accuracy"))]
    best = config.get("best_iteration")
    return {
        "label": f"{init} ({config['training']})" if config.get("training") else init,
        "color": _init_color(init, order),
        "iterations": np.array([r["iteration"] for r in history], dtype=float),
        "loss": np.array([r["loss"] for r in history], dtype=float),
        "val_iterations": [int(r["iteration"]) for r in validated if not is_missing(r.get("iteration"))],
        "val_accuracy": [float(r["val_accuracy"]) for r in validated if not is_missing(r.get("iteration"))],
        "best": None if is_missing(best) else int(best),
    }


def _cost_table(order: list[str], configs: dict[str, dict], from_summary: dict, manifest: Optional[dict]) -> Table:
    columns = [
        ("init", False), ("trained by", False), ("training", False), ("iterations", True), ("selected iteration", True),
        ("last loss", True), ("meta-val accuracy at selected", True), ("meta-training seconds", True),
        ("seconds per iteration", True), ("peak memory MB", True), ("device", False),
    ]  # fmt: skip
    rows = []
    for init in order:
        config = configs.get(init, {})
        fallback = from_summary.get(init) if isinstance(from_summary.get(init), dict) else {}

        def value(key: str, config=config, fallback=fallback) -> Any:
            return config[key] if key in config else fallback.get(key)

        history = _history(config)
        losses = [r["loss"] for r in history if not is_missing(r.get("loss"))]
        selected = value("best_iteration")
        validated = {r.get("iteration"): r["val_accuracy"] for r in history if not is_missing(r.get("val_accuracy"))}
        seconds, iterations = value("seconds"), value("iterations")
        per_iteration = (
            float(seconds) / float(iterations)
            if not is_missing(seconds) and not is_missing(iterations) and float(iterations) > 0 else None
        )  # fmt: skip
        device = config.get("device") or (manifest or {}).get("device")
        rows.append(
            [
                init, str(config.get("method", MISSING)), str(config.get("training", MISSING)), fmt_int(iterations),
                fmt_int(selected), fmt_fixed(losses[-1], 3) if losses else MISSING,
                fmt_metric(validated.get(selected)) if validated else MISSING, fmt_seconds(seconds),
                MISSING if per_iteration is None else fmt_number(per_iteration), fmt_fixed(value("peak_memory_mb"), 1),
                str(device) if device else MISSING,
            ]
        )  # fmt: skip
    caption = (
        "the cost of each initialization; peak memory is torch.cuda.max_memory_allocated on CUDA and the "
        "process's peak RSS on CPU (a running maximum: on CPU an init trained later reports at least the earlier peak)"
    )
    return Table.build(columns, rows, caption=caption)


def _transfer(fewshot: FewShotParams, summary: Optional[dict], summary_note: Optional[str]) -> dict:
    """The non-episodic use: ordinary training on the meta-test classes from each init, time to a threshold."""
    empty = {"transfer_table": None, "transfer_figure": None}
    if summary is None:
        return {"transfer_notes": [summary_note] if summary_note else [], **empty}
    transfer = summary.get("transfer")
    if transfer is None:
        note = (
            "not run: fewshot.transfer is null in the params"
            if fewshot.transfer is None
            else "not available: fewshot/summary.json holds no transfer results (rerun the fewshot_eval stage)"
        )
        return {"transfer_notes": [note], **empty}
    methods = transfer.get("methods") if isinstance(transfer, dict) else None
    if not isinstance(methods, dict):
        return {"transfer_notes": ["not available: fewshot/summary.json's transfer has no methods"], **empty}
    methods = {str(name): entry for name, entry in methods.items() if isinstance(entry, dict)}
    notes = []
    threshold = fmt_number(transfer.get("threshold"))
    reference = methods.get(REFERENCE, {})
    reference_steps = reference.get("steps_to_threshold") if reference.get("state") == "ok" else None
    if REFERENCE not in methods:
        notes.append(f"no {REFERENCE} run: the steps are not compared with training from scratch")
    elif reference.get("state") != "ok":
        notes.append(f"{REFERENCE} did not finish: the steps are not compared with training from scratch")
    elif is_missing(reference_steps):
        notes.append(f"{REFERENCE} never reached {threshold}: the steps are not compared with it")
    columns = [
        ("method", False), ("init", False), ("state", False), ("test accuracy", True), ("best val accuracy", True),
        (f"epochs to ≥{threshold}", True), (f"steps to ≥{threshold}", True), (f"seconds to ≥{threshold}", True),
        ("total seconds", True), (f"steps vs {REFERENCE}", True),
    ]  # fmt: skip
    rows, curves = [], []
    order = display_order(methods, fewshot.methods)
    for method in order:
        entry = methods[method]
        state = str(entry.get("state", MISSING))
        if state != "ok":
            notes.append(f"{method}: {state}: {entry.get('message') or 'no message'}")
            rows.append([method, str(entry.get("init", MISSING)), state] + [MISSING] * (len(columns) - 3))
            continue
        val = [float(v) for v in entry.get("val_accuracy") or [] if not is_missing(v)]
        seconds = [float(v) for v in entry.get("seconds") or [] if not is_missing(v)]
        steps = entry.get("steps_to_threshold")
        reached = not is_missing(entry.get("epochs_to_threshold"))
        ratio = MISSING
        if reached and not is_missing(steps) and not is_missing(reference_steps) and float(reference_steps) > 0:
            ratio = f"{float(steps) / float(reference_steps):.2f}×"
        elif not reached and not is_missing(reference_steps):
            ratio = NOT_REACHED
        rows.append(
            [
                method, str(entry.get("init", MISSING)), state, fmt_metric(entry.get("test_accuracy")),
                fmt_metric(max(val)) if val else MISSING,
                fmt_int(entry.get("epochs_to_threshold")) if reached else NOT_REACHED,
                fmt_int(steps) if reached else NOT_REACHED,
                fmt_seconds(entry.get("seconds_to_threshold")) if reached else NOT_REACHED,
                fmt_seconds(sum(seconds)) if seconds else MISSING, ratio,
            ]
        )  # fmt: skip
        if val:
            curves.append((method, val))
    caption = (
        f"{fmt_int(transfer.get('classes'))} meta-test classes as one classification task: "
        f"{fmt_int(transfer.get('train_rows'))} training rows, {fmt_int(transfer.get('steps_per_epoch'))} steps per "
        f"epoch; threshold {threshold} val accuracy"
    )
    return {
        "transfer_notes": notes,
        "transfer_table": Table.build(columns, rows, caption=caption) if rows else None,
        "transfer_figure": figures.learning_curves_figure(
            curves, "val accuracy", [_method_color(method, list(fewshot.methods)) for method, _ in curves],
            None if is_missing(transfer.get("threshold")) else float(transfer["threshold"]),
        ) if curves else None,
    }


SECTION = SECTIONS.register(Section("fewshot", "Few-shot meta-learned initialization", build))
