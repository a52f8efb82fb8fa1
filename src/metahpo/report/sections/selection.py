"""The selection section: ranking a pool of trained models for a new task from K labelled examples.

Reads the pool stage (``pool/pool.json``: the members in order; ``pool/<member>/member.json``: each
member's descriptor), the pool_finetune stage (``pool_finetune/truth.parquet``: every member
fine-tuned on every target, the ground truth) and the selection stage (``selection/summary.json``:
the selectors' table and the compute saved; ``selection/draws.parquet``: one row per selector,
target and redraw; ``selection/scores.parquet``: every selector's score of every member).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import numpy as np
import pandas as pd

from metahpo.report import figures
from metahpo.report.common import display_order, listed, stage_object, summary_rows, with_ci
from metahpo.report.inputs import ResultsTree
from metahpo.report.section import SECTIONS, ReportInputs, Section
from metahpo.report.tables import MISSING, Table, as_float, fmt_fixed, fmt_int, fmt_metric, fmt_number, is_missing

if TYPE_CHECKING:  # annotations only: the library never imports the params module
    from metahpo.config import SelectionParams


REFERENCE = "meta"  # the meta-learned selector: the paired tests and the compute table are about it
FALLBACK = "logme"  # the scatter's x without the meta-learned selector: a score, not a predicted metric
OFF_NOTE = (
    "Model selection is off in this profile (selection: null in the params): no pool was trained, "
    "fine-tuned or ranked."
)
MAX_LISTED_CLASSES = 10  # a member's source classes are named up to this many, else counted


def build(inputs: ReportInputs) -> dict:
    data = {"off": None, "setup": [], "pool_notes": [], "pool_table": None, "comparison_notes": [],
            "comparison_table": None, "comparison_figure": None, "scatter_notes": [], "scatter_figure": None,
            "scatter_alt": "", "compute_notes": [], "compute_table": None, "compute_line": None, "truth_notes": [],
            "truth_table": None}  # fmt: skip
    selection, results = inputs.params.selection, inputs.results
    summary, summary_note = _summary(results)
    if selection is None or (summary is not None and summary.get("enabled") is False):
        return {**data, "off": OFF_NOTE}
    truth_stage = results.missing_stage("pool_finetune")
    truth, truth_note = (None, truth_stage) if truth_stage else results.pool_truth()
    members = _member_order(results, selection, summary)
    targets = display_order(
        [*listed(summary, "targets"), *selection.targets, *(truth["target"].astype(str) if truth is not None else [])],
        listed(summary, "targets") or list(selection.targets),
    )  # fmt: skip
    data["setup"] = _setup(selection, summary, members, targets)
    data.update(_pool(results, members))
    data.update(_comparison(selection, summary, summary_note))
    data.update(_scatter(results, truth, truth_note, members, targets))
    data.update(_compute(summary, summary_note, targets))
    data.update(_truth(truth, truth_note, members, targets))
    return data


def _summary(results: ResultsTree) -> tuple[Optional[dict], Optional[str]]:
    return stage_object(results, "selection", results.selection_summary, "selection/summary.json")


def _member_order(results: ResultsTree, selection: SelectionParams, summary: Optional[dict]) -> list[str]:
    """The pool's order: its manifest's, else the summary's, else the params'."""
    manifest = None if results.missing_stage("pool") else results.pool_manifest()[0]
    return listed(manifest if isinstance(manifest, dict) else None, "members") or listed(summary, "members") or list(
        selection.pool
    )


def _setup(selection: SelectionParams, summary: Optional[dict], members: list[str], targets: list[str]) -> list[str]:
    """How the problem was posed: the summary's K and redraws (what ran), else the params'."""
    shots = (summary or {}).get("shots", selection.shots)
    redraws = (summary or {}).get("redraws", selection.redraws)
    datasets = display_order({spec.dataset for spec in selection.targets.values()}, [])
    recipe = selection.finetune
    rates = ", ".join(
        f"{fmt_number(rate)} ({family})" for family, rate in sorted(recipe.lr.items(), key=lambda i: i[0] != "default")
    )  # fmt: skip
    return [
        f"Pool: {len(members)} members; {len(targets)} targets ({', '.join(targets)}) from "
        f"{', '.join(datasets)}, each held out in turn.",
        f"Each selector ranks the pool from K = {fmt_int(shots)} labelled training examples of the target, drawn "
        f"{fmt_int(redraws)} times (stratified and seeded: the same draws for every selector).",
        f"Ground truth: every member fine-tuned on every target's training rows with one recipe (learning rate "
        f"{rates}, batch size {recipe.batch_size}, {recipe.epochs} epochs, weight decay "
        f"{fmt_number(recipe.weight_decay)}), scored on the target's test split.",
    ]


def _pool(results: ResultsTree, members: list[str]) -> dict:
    """One row per member from its descriptor; a missing descriptor is a note and a row of dashes."""
    stage_note = results.missing_stage("pool")
    if stage_note:
        return {"pool_notes": [stage_note], "pool_table": None}
    notes = []
    manifest, manifest_note = results.pool_manifest()
    if manifest_note:
        notes.append(manifest_note)
    elif isinstance(manifest, dict) and manifest.get("enabled") is False:
        notes.append("the pool stage ran with selection: null: the pool is empty (rerun the pool stage)")
    columns = [
        ("member", False), ("family", False), ("kind", False), ("fine-tunes", False), ("parameters", True),
        ("source dataset", False), ("source classes", False), ("source rows", True), ("source metric", False),
        ("source val metric", True),
    ]  # fmt: skip
    rows = []
    for member in members:
        descriptor, note = results.pool_member(member)
        if not isinstance(descriptor, dict):
            notes.append(f"{member}: {note or 'not available: its member.json is not an object'}")
            rows.append([member] + [MISSING] * (len(columns) - 1))
            continue
        source = descriptor.get("source") if isinstance(descriptor.get("source"), dict) else {}
        training = descriptor.get("training") if isinstance(descriptor.get("training"), dict) else {}
        kind = str(descriptor.get("kind", MISSING))
        if descriptor.get("variant_of"):
            kind += f", weights of {descriptor['variant_of']}"
        finetune = {"all": "all layers", "head": "head only"}.get(descriptor.get("finetune"), MISSING)
        rows.append(
            [
                member, str(descriptor.get("family", MISSING)), kind, finetune, _count(descriptor.get("parameters")),
                str(source["dataset"]) if source.get("dataset") else "as shipped", _classes(source),
                _count(source.get("rows")), str(training.get("metric") or MISSING),
                fmt_metric(training.get("val_metric")),
            ]
        )  # fmt: skip
    caption = (
        "the pool in its order; a member trained here reports its validation metric on its source dataset, a "
        "checkpoint as shipped has none; a variant shares another member's weights and fine-tunes differently"
    )
    return {"pool_notes": notes, "pool_table": Table.build(columns, rows, caption=caption) if rows else None}


def _count(value: Any) -> str:
    return MISSING if is_missing(value) else f"{int(value):,}"


def _classes(source: dict) -> str:
    classes = source.get("classes")
    if isinstance(classes, list) and 0 < len(classes) <= MAX_LISTED_CLASSES:
        return f"{len(classes)}: {', '.join(str(name) for name in classes)}"
    count = len(classes) if isinstance(classes, list) and classes else source.get("num_classes")
    return fmt_int(count)


def _decimals(value: Any) -> int:
    """Decimals that show three significant digits of ``value`` (at most four, none above 100)."""
    if is_missing(value) or float(value) == 0:
        return 3
    return int(min(4, max(0, 2 - np.floor(np.log10(abs(float(value)))))))


def _millisecondswith_ci(seconds: Any, half_width: Any) -> str:
    """Milliseconds, the mean to three significant digits and its half-width to as many decimals."""
    if is_missing(seconds):
        return MISSING
    digits = _decimals(1000 * float(seconds))
    half = "" if is_missing(half_width) else f" ±{fmt_fixed(1000 * float(half_width), digits)}"
    return fmt_fixed(1000 * float(seconds), digits) + half


def _p_value(value: Any) -> str:
    if is_missing(value):
        return MISSING
    return "<0.001" if float(value) < 0.001 else fmt_fixed(value, 3)


def _comparison(selection: SelectionParams, summary: Optional[dict], summary_note: Optional[str]) -> dict:
    """The selectors' table and its figure: rank correlation, regret, hit rate and cost, in the summary's selector
    order."""
    empty = {"comparison_table": None, "comparison_figure": None}
    if summary is None:
        return {"comparison_notes": [summary_note] if summary_note else [], **empty}
    by_selector = {row["selector"]: row for row in summary_rows(summary, "table", "selector")}
    if not by_selector:
        return {"comparison_notes": ["not available: selection/summary.json has no selector table"], **empty}
    order = display_order(by_selector, listed(summary, "selectors") or selection.selectors)
    notes = []
    if REFERENCE not in by_selector:
        notes.append(f"no {REFERENCE} selector in the results: no paired test, interval coverage or error")
    columns = [
        ("selector", False), ("targets", True), ("weighted τ ±95% CI", True), ("top-1 regret ±95% CI", True),
        ("median regret", True), ("top-3 hit ±95% CI", True), ("selection ms ±95% CI", True),
        (f"interval coverage (nominal {fmt_number(selection.coverage)})", True), ("mean |predicted − truth|", True),
        (f"p, {REFERENCE} lower regret", True),
    ]  # fmt: skip
    table_rows = []
    for selector in order:
        row = by_selector[selector]
        if selector == REFERENCE:
            p_value = "reference"
        else:
            p_value = _p_value(row.get("p_reference_lower_regret")) if REFERENCE in by_selector else MISSING
        table_rows.append(
            [
                selector, fmt_int(row.get("targets")), with_ci(row.get("tau"), row.get("tau_ci")),
                with_ci(row.get("regret"), row.get("regret_ci")), fmt_metric(row.get("median_regret")),
                with_ci(row.get("hit3"), row.get("hit3_ci")),
                _millisecondswith_ci(row.get("seconds"), row.get("seconds_ci")), fmt_metric(row.get("coverage")),
                fmt_metric(row.get("abs_error")), p_value,
            ]
        )  # fmt: skip
    shots, redraws = summary.get("shots", selection.shots), summary.get("redraws", selection.redraws)
    caption = f"every selector on K = {fmt_int(shots)} examples, {fmt_int(redraws)} redraws per target"
    return {"comparison_notes": notes, "comparison_table": Table.build(columns, table_rows, caption=caption),
            "comparison_figure": figures.interval_dot_figure(_comparison_panels(order, by_selector))}


def _comparison_panels(order: list[str], by_selector: dict[str, dict]) -> list[dict]:
    """Weighted tau and top-1 regret per selector, the table's rows: the mean and its 95% interval over targets
    (NaN bounds where the table has no half-width); the meta selector in its own colour."""
    panels = []
    labels = {"tau": "weighted τ (0: chance, 1: the true order)", "regret": "top-1 regret (0: the best)"}
    for key, xlabel in labels.items():
        rows = []
        for selector in order:
            value, half = (as_float(by_selector[selector].get(name)) for name in (key, f"{key}_ci"))
            rows.append({"label": selector, "value": value, "low": value - half, "high": value + half,
                         "color": "C1" if selector == REFERENCE else "C0"})  # fmt: skip
        panels.append({"xlabel": xlabel, "log_x": False, "reference": 0.0, "rows": rows})
    return panels


def _scatter(results: ResultsTree, truth: Optional[pd.DataFrame], truth_note: Optional[str], members: list[str],
             targets: list[str]) -> dict:  # fmt: skip
    """Per target, each member's score (mean over redraws) against its fine-tuned metric."""
    empty = {"scatter_figure": None, "scatter_alt": ""}
    stage_note = results.missing_stage("selection")
    scores, scores_note = (None, stage_note) if stage_note else results.selection_scores()
    notes = [note for note in (scores_note, truth_note) if note]
    if scores is None or truth is None:
        return {"scatter_notes": notes, **empty}
    present = set(scores["selector"])
    selector = REFERENCE if REFERENCE in present else FALLBACK if FALLBACK in present else None
    if selector is None:
        notes.append(f"not available: selection/scores.parquet holds neither {REFERENCE} nor {FALLBACK} scores")
        return {"scatter_notes": notes, **empty}
    if selector != REFERENCE:
        notes.append(f"no {REFERENCE} selector in the results: x is the {FALLBACK} score, on its own scale per target")
    own = scores[scores["selector"] == selector]
    columns = [column for column in ("score", "lower", "upper") if column in own.columns]
    means = own.groupby(["target", "member"])[columns].mean()
    ok = truth[(truth["state"] == "ok") & truth["truth"].notna()].drop_duplicates(["target", "member"])
    observed = ok.set_index(["target", "member"])["truth"]
    chosen, taus = _chosen(results, selector, members)
    panels = []
    for target in targets:
        points = []
        for index, member in enumerate(display_order(means.loc[target].index if target in means.index else [],
                                                     members)):  # fmt: skip
            if (target, member) not in observed.index:
                continue
            row = means.loc[(target, member)]
            points.append({
                "label": member, "color": f"C{(members.index(member) if member in members else len(members)) % 10}",
                "x": float(row["score"]), "y": float(observed[(target, member)]),
                "low": float(row["lower"]) if "lower" in row else np.nan,
                "high": float(row["upper"]) if "upper" in row else np.nan,
                "chosen": chosen.get(target) == member,
            })  # fmt: skip
        if points:
            tau = taus.get(target)
            panels.append({"title": target if tau is None else f"{target}  τ {tau:+.2f}", "points": points})
    if not panels:
        notes.append(f"not available: no target has both {selector} scores and a fine-tuned metric")
        return {"scatter_notes": notes, **empty}
    metrics = sorted(set(ok["metric"].dropna().astype(str)))
    ylabel = f"fine-tuned {metrics[0]}" if len(metrics) == 1 else "fine-tuned metric"
    xlabel = "predicted metric (meta)" if selector == REFERENCE else "LogME score"
    figure = figures.score_truth_figure(panels, xlabel + ", mean over redraws", ylabel, diagonal=selector == REFERENCE)
    alt = (
        f"per target, each member's {selector} {'predicted metric' if selector == REFERENCE else 'score'} (mean over "
        "redraws) against its fine-tuned metric"
    )
    return {"scatter_notes": notes, "scatter_figure": figure, "scatter_alt": alt}


def _chosen(results: ResultsTree, selector: str, members: list[str]) -> tuple[dict[str, str], dict[str, float]]:
    """Per target: the member ``selector`` chose in most redraws (ties: pool order) and its mean tau."""
    draws, _ = results.selection_draws()  # the figure is drawn without the ring and the tau if it is missing
    if draws is None:
        return {}, {}
    own = draws[draws["selector"] == selector]
    chosen, taus = {}, {}
    for target, group in own.groupby("target", sort=False):
        counts = group["chosen"].astype(str).value_counts()
        top = [member for member, count in counts.items() if count == counts.max()]
        chosen[str(target)] = display_order(top, members)[0]
        tau = group["tau"].mean()
        if not is_missing(tau):
            taus[str(target)] = float(tau)
    return chosen, taus


def _compute(summary: Optional[dict], summary_note: Optional[str], targets: list[str]) -> dict:
    """Per target: fine-tuning the whole pool against the meta selector's selection plus one fine-tuning."""
    empty = {"compute_table": None, "compute_line": None}
    if summary is None:
        return {"compute_notes": [summary_note] if summary_note else [], **empty}
    rows = summary.get("compute")
    rows = [row for row in rows if isinstance(row, dict) and row.get("target")] if isinstance(rows, list) else []
    if not rows:
        note = (
            f"not available: selection/summary.json has no compute rows (they are the {REFERENCE} selector's: is it "
            "in selection.selectors?)"
        )
        return {"compute_notes": [note], **empty}
    by_target = {str(row["target"]): row for row in rows}
    columns = [
        ("target", False), ("members", True), ("fine-tune whole pool s", True), ("selection s", True),
        ("selection + one fine-tuning s", True), ("speedup", True), ("best in pool", True),
        ("chosen member's metric", True),
    ]  # fmt: skip
    table_rows = []
    for target in display_order(by_target, targets):
        row = by_target[target]
        speedup = row.get("speedup")
        table_rows.append(
            [
                target, fmt_int(row.get("members")), fmt_fixed(row.get("pool_seconds"), 2),
                fmt_fixed(row.get("selection_seconds"), 2), fmt_fixed(row.get("selected_seconds"), 2),
                MISSING if is_missing(speedup) else f"{float(speedup):.2f}×", fmt_metric(row.get("best_truth")),
                fmt_metric(row.get("chosen_truth")),
            ]
        )  # fmt: skip
    speedups = [float(row["speedup"]) for row in rows if not is_missing(row.get("speedup"))]
    line = None
    if speedups:
        faster = sum(speedup > 1 for speedup in speedups)
        line = (
            f"Median speedup over {len(speedups)} targets: {float(np.median(speedups)):.2f}× ({faster} of "
            f"{len(speedups)} faster than fine-tuning the whole pool; below 1× the selection cost more than the "
            "fine-tunings it saved)."
        )
    caption = (
        f"the {REFERENCE} selector's cost per target, means over redraws: selection includes embedding the K examples "
        "through every member; the chosen member's metric is its fine-tuned metric"
    )
    return {"compute_notes": [], "compute_table": Table.build(columns, table_rows, caption=caption),
            "compute_line": line}  # fmt: skip


def _truth(truth: Optional[pd.DataFrame], truth_note: Optional[str], members: list[str], targets: list[str]) -> dict:
    """Targets x members: the fine-tuned metric, or the state of a run that did not finish."""
    if truth is None:
        return {"truth_notes": [truth_note] if truth_note else [], "truth_table": None}
    if not len(truth):
        return {"truth_notes": ["not available: pool_finetune/truth.parquet has no rows"], "truth_table": None}
    truth = truth.drop_duplicates(["target", "member"], keep="last")
    shown_members = display_order(truth["member"].astype(str), members)
    notes = []
    columns = [("target", False), ("classes", True), ("train rows", True), ("metric", False)]
    columns += [(member, True) for member in shown_members] + [("best", False)]
    rows = []
    for target in display_order(truth["target"].astype(str), targets):
        of_target = truth[truth["target"] == target].set_index("member")
        cells = []
        for member in shown_members:
            if member not in of_target.index:
                cells.append(MISSING)
                continue
            run = of_target.loc[member]
            if run["state"] == "ok" and not is_missing(run["truth"]):
                cells.append(fmt_metric(run["truth"]))
            else:
                cells.append(str(run["state"]))
                message = run.get("message")
                message = message if isinstance(message, str) and message else "no message"
                notes.append(f"{target} / {member}: {run['state']}: {message}")
        finished = of_target[(of_target["state"] == "ok") & of_target["truth"].notna()]["truth"]
        best = display_order(finished.index[finished == finished.max()].astype(str), members) if len(finished) else []
        first = of_target.iloc[0]
        rows.append(
            [
                target, fmt_int(first.get("classes")), fmt_int(first.get("train_rows")), str(first["metric"]), *cells,
                ", ".join(best) or MISSING,
            ]
        )  # fmt: skip
    caption = "every member fine-tuned on every target: its test metric, or the state of a run that did not finish"
    return {"truth_notes": notes, "truth_table": Table.build(columns, rows, caption=caption)}


SECTION = SECTIONS.register(Section("selection", "Model selection from a pool", build))
