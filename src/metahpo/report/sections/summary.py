"""The summary section, first in the report: one sentence and one figure per capability, linked to its section.

Every figure is read through the same functions (``metahpo.report.common``) and formatted by the same
formatters as the table of the section it links to, so the headline and the evidence below it
cannot disagree (tests/test_report.py checks it cell by cell). A capability that is off in the
params says so; one whose results are missing gets a one-line "not run" note.
"""

from __future__ import annotations

from typing import Any, Optional

import pandas as pd

from metahpo.hpo.regret_summary import CHECKPOINTS, TARGETS
from metahpo.report.common import (
    benchmark_families,
    bracket,
    display_order,
    fewshot_table,
    loto_means,
    median_cell,
    stage_object,
    summary_rows,
    with_bounds,
    with_ci,
)
from metahpo.report.section import SECTIONS, ReportInputs, Section
from metahpo.report.tables import MISSING, fmt_fixed, fmt_int, fmt_number, fmt_percent, fmt_seconds, is_missing

RECOMMENDERS = ("safe", "surrogate")  # the recommended config: the safe rule's top-1 where fit_meta has it
BASELINES = ("random", "tpe")  # the tuned strategy is set against random search and TPE
# the meta-learned selector: selection.REFERENCE, not imported, as importing that section here would
# register it before this one (the import order is the report's order)
SELECTOR = "meta"


def build(inputs: ReportInputs) -> dict:
    items = [_recommendation(inputs), *_transfer(inputs), _fewshot(inputs), _selection(inputs), _lr_control(inputs)]
    for item in items:  # the link reads as the heading of the section its anchor lies in
        item["section"] = SECTIONS.get(item["anchor"].split("-", 1)[0]).heading
    return {"capabilities": items}


def _item(capability: str, anchor: str, figure: str, sentence: str) -> dict:
    return {"capability": capability, "anchor": anchor, "figure": figure, "sentence": sentence, "note": None}


def _not_run(capability: str, anchor: str, note: Optional[str]) -> dict:
    """One line instead of a figure: why there is none (the section's own note, without its prefix)."""
    reason = (note or "no results").removeprefix("not available: ")
    return {"capability": capability, "anchor": anchor, "figure": None, "sentence": None, "note": f"not run: {reason}"}


def _off(capability: str, anchor: str, key: str) -> dict:
    return {"capability": capability, "anchor": anchor, "figure": None, "sentence": None,
            "note": f"off in this profile ({key}: null in the params)"}  # fmt: skip


def _recommendation(inputs: ReportInputs) -> dict:
    """fit_meta's leave-one-task-out table at k = 1: the recommended config's regret and cost, and the default's."""
    capability = "Recommended configuration"
    loto, note = inputs.results.loto()
    if loto is None:
        return _not_run(capability, "loto", note)
    means = loto_means(loto)
    k = min(int(k) for k in loto["k"].unique())  # 1 in fit_meta's table: the top-1 config alone
    method = next((m for m in RECOMMENDERS if (m, k) in means.index), None)
    if method is None:
        return _not_run(capability, "loto", f"meta/loto.parquet has no {' or '.join(RECOMMENDERS)} rows")
    row = means.loc[(method, k)]
    figure = with_ci(row.regret, row.regret_half)
    sentence = (
        f"{method}'s top-1 config, held out task by task: mean regret {figure} (95% interval over "
        f"{fmt_int(row.tasks)} tasks) against the grid's best (0 = the grid best, 1 = the grid worst), trained at "
        f"{fmt_percent(row.seconds_share)} of the grid's seconds"
    )
    others = [m for m in ("default", "surrogate") if m != method and (m, k) in means.index]
    for other in others:
        sentence += f"; the {'family default' if other == 'default' else other + ' top-1'}'s regret is " + with_ci(
            means.loc[(other, k)].regret, means.loc[(other, k)].regret_half
        )
    return _item(capability, "loto", figure, sentence + ".")


def _transfer(inputs: ReportInputs) -> list[dict]:
    """The benchmark replay of the tuned strategy (tune.strategy), one line per family: trials to each target."""
    capability, results = "Transfer HPO", inputs.results
    strategy = inputs.params.tune.strategy
    summary, note = stage_object(results, "benchmark", results.benchmark_summary, "benchmark/summary.json")
    families = benchmark_families(summary) if summary is not None else None
    if families is None:
        return [_not_run(capability, "strategies", note or "benchmark/summary.json is not keyed by family")]
    items = []
    for family in display_order(families, list(inputs.params.families)):
        entry, label = families[family], f"{capability} ({family})"
        records = {str(r.get("strategy")): r for r in entry["records"] or [] if isinstance(r, dict)}
        if strategy not in records:
            reason = entry["note"] or f"{strategy} (tune.strategy) is not in the benchmark results"
            items.append(_not_run(label, f"strategies-{family}", str(reason)))
            continue
        figure = _time_to(records[strategy], "trials")
        targets = " / ".join(f"≤{target:g}" for target in TARGETS)
        sentence = f"{strategy} replayed on the {family} tasks reaches regret {targets} in a median {figure} trials"
        sentence += _against(records, "trials") + f", and {_time_to(records[strategy], 'cost')} seconds"
        sentence += _against(records, "cost") + "; medians over task × seed runs [95% interval]"
        if not any(b in records for b in BASELINES):
            sentence += f" ({' and '.join(BASELINES)} not in the benchmark)"
        k = _checkpoint(records[strategy], inputs.params.tune.trials)
        if k is not None:
            sentence += f"; mean regret at trial {k}: {_regret_at(records[strategy], k)}" + "".join(
                f", {b} {_regret_at(records[b], k)}" for b in BASELINES if b in records
            )  # fmt: skip
        items.append(_item(label, f"strategies-{family}", figure, sentence + "."))
    return items or [_not_run(capability, "strategies", "benchmark/summary.json has no family")]


def _time_to(record: dict, what: str) -> str:
    """The benchmark table's cells for ``what`` (trials or cost) to each target, " / "-joined: the median over
    task x seed runs ("not reached" if half of them never do) and its 95% interval where summary.json has it."""
    fmt = fmt_number if what == "trials" else fmt_seconds
    return " / ".join(median_cell(record, f"{what}_to_{target:g}", fmt) for target in TARGETS)


def _against(records: dict, what: str) -> str:
    """" against random ... and tpe ...": the baselines' ``_time_to`` (not in parentheses: an interval
    can end in ")"); empty when none is in the benchmark."""
    against = [f"{b} {_time_to(records[b], what)}" for b in BASELINES if b in records]
    return f" against {' and '.join(against)}" if against else ""


def _checkpoint(record: dict, trials: int) -> Optional[int]:
    """The benchmark's checkpoint nearest the tune stage's budget from below (the smallest if none is)."""
    present = [k for k in CHECKPOINTS if f"regret@{k}" in record]
    return max((k for k in present if k <= trials), default=min(present, default=None))


def _regret_at(record: dict, k: int) -> str:
    return with_bounds(record.get(f"regret@{k}"), record.get(f"regret@{k}_low"), record.get(f"regret@{k}_high"))


def _fewshot(inputs: ReportInputs) -> dict:
    """The first meta-test setting: the best meta-learned initialization's accuracy against the best baseline's."""
    capability, results, fewshot = "Meta-learned initialization", inputs.results, inputs.params.fewshot
    summary, note = stage_object(results, "fewshot_eval", results.fewshot_summary, "fewshot/summary.json")
    if fewshot is None or (summary is not None and summary.get("enabled") is False):
        return _off(capability, "fewshot", "fewshot")
    table, notes = fewshot_table(summary)
    if not len(table) or "accuracy" not in table.columns or "meta_learned" not in table.columns:
        return _not_run(capability, "fewshot", note or (notes[0] if notes else "the comparison table has no "
                                                                                "accuracy or meta_learned column"))
    setting = display_order(table["setting"], [s.name for s in fewshot.evaluate.settings])[0]
    rows = table[(table["setting"] == setting) & table["accuracy"].notna()]
    learned = _best(rows[rows["meta_learned"] == True], "accuracy")  # noqa: E712  (a column of bools or NaN)
    baseline = _best(rows[rows["meta_learned"] == False], "accuracy")  # noqa: E712
    if learned is None:
        return _not_run(capability, "fewshot-comparison", f"no meta-learned method has an accuracy on {setting}")
    figure = with_ci(learned["accuracy"], learned.get("accuracy_ci"))
    sentence = (f"on {setting} episodes, {learned['method']} reaches query accuracy {figure} (95% interval over the "
                f"episodes) after {fmt_int(learned.get('steps'))} adaptation steps")  # fmt: skip
    if baseline is not None:
        sentence += f"; the best baseline, {baseline['method']}, " + with_ci(baseline["accuracy"], baseline.get("accuracy_ci"))
    return _item(capability, "fewshot-comparison", figure, sentence + ".")


def _best(rows: pd.DataFrame, column: str) -> Optional[dict[str, Any]]:
    return rows.loc[rows[column].astype(float).idxmax()].to_dict() if len(rows) else None


def _selection(inputs: ReportInputs) -> dict:
    """The meta-learned selector's weighted tau and top-1 regret, beside the best other selector's."""
    capability, results = "Model selection", inputs.results
    summary, note = stage_object(results, "selection", results.selection_summary, "selection/summary.json")
    if inputs.params.selection is None or (summary is not None and summary.get("enabled") is False):
        return _off(capability, "selection", "selection")
    rows = {row["selector"]: row for row in summary_rows(summary, "table", "selector")}
    if SELECTOR not in rows:
        return _not_run(capability, "selection", note or f"selection/summary.json has no {SELECTOR} selector row")
    meta = rows[SELECTOR]
    figure = with_ci(meta.get("tau"), meta.get("tau_ci"))
    sentence = (f"the meta-learned selector ranks the pool with weighted τ {figure} and its choice has top-1 regret "
                f"{with_ci(meta.get('regret'), meta.get('regret_ci'))} (95% intervals over "
                f"{fmt_int(meta.get('targets'))} targets)")  # fmt: skip
    others = {name: row for name, row in rows.items() if name != SELECTOR and not is_missing(row.get("tau"))}
    if others:
        name = max(others, key=lambda n: float(others[n]["tau"]))
        sentence += (f"; the best other selector by τ, {name}: τ {with_ci(others[name]['tau'], others[name].get('tau_ci'))}"
                     f", regret {with_ci(others[name].get('regret'), others[name].get('regret_ci'))}")  # fmt: skip
    return _item(capability, "selection-comparison", figure, sentence + ".")


def _lr_control(inputs: ReportInputs) -> dict:
    """The learned controller's steps to threshold over every held-out task, as a ratio to each baseline's."""
    capability, results, control = "Learning-rate controller", inputs.results, inputs.params.lr_control
    summary, note = stage_object(results, "lr_eval", results.lr_eval_summary, "lr_eval/summary.json")
    if control is None or (summary is not None and summary.get("enabled") is False):
        return _off(capability, "lr_control", "lr_control")
    ratios = {str(row["baseline"]): row for row in summary_rows(summary, "ratios", "task")
              if row["task"] == "all" and row.get("baseline") is not None}  # fmt: skip
    if not ratios:
        return _not_run(capability, "lr_control", note or "lr_eval/summary.json has no step ratios over all tasks")
    baselines = display_order(ratios, list(control.methods))
    # the ratio and the interval as the section's ratio table prints them
    cells = {b: (fmt_fixed(ratios[b].get("ratio"), 2), bracket(ratios[b].get("low"), ratios[b].get("high")))
             for b in baselines}  # fmt: skip
    first = next((b for b in baselines if cells[b][1] != MISSING), baselines[0])  # the headline has an interval
    figure = " ".join(cell for cell in cells[first] if cell != MISSING)
    sentence = (f"over the held-out tasks the learned controller needs {figure} times {first}'s steps to reach the "
                "threshold (geometric mean over paired runs, 95% interval)")  # fmt: skip
    others = [b for b in baselines if b != first]
    if others:
        sentence += "; against " + ", ".join(f"{b}: {' '.join(c for c in cells[b] if c != MISSING)}" for b in others)
    return _item(capability, "lr_control-ratios", figure, sentence + ".")


SECTION = SECTIONS.register(Section("summary", "Summary", build))
