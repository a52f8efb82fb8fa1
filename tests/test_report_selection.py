"""The report's selection section, on synthetic pool, pool_finetune and selection outputs."""

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
OFF = "Model selection is off in this profile (selection: null in the params)"

BASE_RAW = {
    "datasets": {"digits": {"source": "digits"}, "wine": {"source": "wine"}},
    "tasks": {"digits-mlp": {"dataset": "digits", "family": "mlp"}},
    "families": {"mlp": {"space": {"lr": {"values": [0.001, 0.01]}}, "default": {"lr": 0.001}}},
    "report": {"title": "Selection report test"},
}
MEMBERS = ("cnn_a", "cnn_a_head", "mlp_b")
TARGETS = ("t_one", "t_two", "t_three")
SELECTION_RAW = {
    "shots": 8, "redraws": 2, "selectors": ["random", "logme", "meta"], "coverage": 0.8,
    "pool": {
        "cnn_a": {"family": "cnn", "dataset": "digits", "classes": ["0", "1", "2"], "config": {"lr": 0.01}},
        "cnn_a_head": {"family": "cnn", "weights_of": "cnn_a", "finetune": "head"},
        "mlp_b": {"family": "mlp", "dataset": "digits", "config": {"lr": 0.001}},
    },
    "targets": {"t_one": {"dataset": "digits", "classes": ["3", "4"], "max_train": 40},
                "t_two": {"dataset": "digits", "max_train": 60}, "t_three": {"dataset": "wine"}},
    "finetune": {"lr": {"default": 0.003, "cnn": 0.01}, "batch_size": 8, "epochs": 2, "weight_decay": 0.0},
}  # fmt: skip
# the fine-tuned metric of each (target, member); t_three / mlp_b failed
TRUTH = {
    ("t_one", "cnn_a"): 0.9, ("t_one", "cnn_a_head"): 0.7, ("t_one", "mlp_b"): 0.8,
    ("t_two", "cnn_a"): 0.6, ("t_two", "cnn_a_head"): 0.5, ("t_two", "mlp_b"): 0.75,
    ("t_three", "cnn_a"): 0.95, ("t_three", "cnn_a_head"): 0.95, ("t_three", "mlp_b"): None,
}  # fmt: skip
META_OFFSET = {0: 0.02, 1: -0.04}  # the meta selector predicts truth + this in redraw r: its mean is truth - 0.01
INTERVAL = 0.05  # its interval's half-width
# the meta selector's choice per (target, redraw): t_two ties, broken by pool order (cnn_a before mlp_b)
META_CHOSEN = {("t_one", 0): "cnn_a", ("t_one", 1): "cnn_a", ("t_two", 0): "mlp_b", ("t_two", 1): "cnn_a",
               ("t_three", 0): "cnn_a_head", ("t_three", 1): "cnn_a_head"}  # fmt: skip
META_TAU = {"t_one": (0.5, 0.7), "t_two": (-0.2, 0.0), "t_three": (1.0, 1.0)}



def _selection_params(selection) -> dict:
    raw = copy.deepcopy(BASE_RAW)
    raw["selection"] = copy.deepcopy(selection)
    return raw


def _descriptor(name: str, **extra) -> dict:
    return {
        "format": 1, "name": name, "family": "cnn", "kind": "trained", "finetune": "all", "parameters": 12345,
        "source": {"dataset": f"digits {HOSTILE}", "classes": ["0", HOSTILE, "2"], "num_classes": 3, "rows": 321},
        "training": {"epochs": 4, "val_metric": 0.9876, "test_metric": 0.97, "metric": "accuracy", "seconds": 2.0},
        **extra,
    }  # fmt: skip


def _truth_frame() -> pd.DataFrame:
    rows = []
    for (target, member), value in TRUTH.items():
        failed = value is None
        rows.append({"target": target, "dataset": "digits", "member": member, "family": member.split("_")[0],
                     "state": "failed" if failed else "ok", "message": f"out of memory {HOSTILE}" if failed else "",
                     "metric": "accuracy", "truth": np.nan if failed else value, "seconds": 1.5,
                     "train_rows": {"t_one": 40, "t_two": 60, "t_three": 100}[target],
                     "classes": {"t_one": 2, "t_two": 10, "t_three": 3}[target]})  # fmt: skip
    return pd.DataFrame(rows)


def _scores_frame() -> pd.DataFrame:
    rows = []
    for target in TARGETS:
        for redraw in (0, 1):
            for index, member in enumerate(MEMBERS):
                truth = TRUTH[(target, member)]
                meta = (0.5 if truth is None else truth) + META_OFFSET[redraw]
                base = {"target": target, "redraw": redraw, "member": member, "seconds": 0.1}
                rows.append({**base, "selector": "meta", "score": meta, "lower": meta - INTERVAL,
                             "upper": meta + INTERVAL})  # fmt: skip
                rows.append({**base, "selector": "logme", "score": -10.0 * index + redraw, "lower": np.nan,
                             "upper": np.nan})  # fmt: skip
                rows.append({**base, "selector": "random", "score": 0.1 * index, "lower": np.nan, "upper": np.nan})
    return pd.DataFrame(rows)


def _draws_frame() -> pd.DataFrame:
    rows = []
    for (target, redraw), chosen in META_CHOSEN.items():
        best = max(v for (t, _), v in TRUTH.items() if t == target and v is not None)
        rows.append({"selector": "meta", "target": target, "redraw": redraw, "tau": META_TAU[target][redraw],
                     "regret": best - TRUTH[(target, chosen)], "hit3": 1.0, "chosen": chosen,
                     "chosen_truth": TRUTH[(target, chosen)], "predicted": 0.8, "seconds": 0.3,
                     "coverage": 1.0, "abs_error": 0.03})  # fmt: skip
        rows.append({"selector": "logme", "target": target, "redraw": redraw, "tau": 0.1, "regret": 0.0,
                     "hit3": 1.0, "chosen": "cnn_a", "chosen_truth": TRUTH[(target, "cnn_a")], "predicted": 0.0,
                     "seconds": 0.2, "coverage": np.nan, "abs_error": np.nan})  # fmt: skip
    return pd.DataFrame(rows)


def _summary() -> dict:
    def row(selector, tau, regret, hit3, seconds, **extra):
        return {"selector": selector, "targets": 3, "tau": tau, "tau_ci": 0.1, "regret": regret, "regret_ci": 0.02,
                "median_regret": regret / 2, "hit3": hit3, "hit3_ci": 0.25, "seconds": seconds,
                "seconds_ci": seconds / 10, "coverage": None, "abs_error": None, **extra}  # fmt: skip

    return {
        "enabled": True, "shots": 8, "redraws": 2, "selectors": ["random", "logme", "meta"],
        "targets": list(TARGETS), "members": list(MEMBERS),
        "table": [  # not in display order: the section orders by "selectors"
            row("meta", 0.45, 0.05, 0.9, 0.8772, coverage=0.8333, abs_error=0.0312),
            row("random", -0.05, 0.2, 0.5, 0.000237, p_reference_lower_regret=0.0004),
            row("logme", 0.3, 0.07, 0.75, 0.3371, p_reference_lower_regret=None),
        ],
        "compute": [  # not in target order either
            {"target": "t_two", "members": 3, "pool_seconds": 4.5, "selection_seconds": 0.3,
             "selected_seconds": 2.25, "speedup": 2.0, "best_truth": 0.75, "chosen_truth": 0.675},
            {"target": "t_one", "members": 3, "pool_seconds": 4.5, "selection_seconds": 7.5,
             "selected_seconds": 9.0, "speedup": 0.5, "best_truth": 0.9, "chosen_truth": 0.9},
            {"target": "t_three", "members": 2, "pool_seconds": 3.0, "selection_seconds": 0.3,
             "selected_seconds": 0.75, "speedup": 4.0, "best_truth": 0.95, "chosen_truth": 0.95},
        ],
    }  # fmt: skip


def _write_selection_results(root: Path) -> None:
    """The pool, pool_finetune and selection stages' outputs (docs/ARCHITECTURE.md); mlp_b's descriptor is missing."""
    write_json(root / "pool" / "members" / "pool.json", {"enabled": True, "device": "cpu", "members": list(MEMBERS)})
    write_json(root / "pool" / "members" / "cnn_a" / "member.json", _descriptor("cnn_a"))
    write_json(root / "pool" / "members" / "cnn_a_head" / "member.json",
               _descriptor("cnn_a_head", finetune="head", variant_of="cnn_a"))  # fmt: skip
    write_parquet(root / "pool_finetune" / "truth.parquet", _truth_frame())
    write_parquet(root / "selection" / "scores.parquet", _scores_frame())
    write_parquet(root / "selection" / "draws.parquet", _draws_frame())
    write_json(root / "selection" / "summary.json", _summary())




def _build(tmp_path: Path, raw: dict, write=None) -> str:
    return section_of(_page(tmp_path, raw, write), "selection")





@pytest.fixture(scope="module")
def page(tmp_path_factory) -> str:
    return _page(tmp_path_factory.mktemp("selection"), _selection_params(SELECTION_RAW), _write_selection_results)


@pytest.fixture(scope="module")
def selection(page) -> str:
    return section_of(page, "selection")


def test_selection_section_sits_between_fewshot_and_lr_control(page):
    ids = SECTIONS.ids()
    assert ids.index("fewshot") + 1 == ids.index("selection") == ids.index("lr_control") - 1
    assert page.index('<section id="fewshot">') < page.index('<section id="selection">') < page.index(
        '<section id="lr_control">'
    )
    assert '<li><a href="#selection">Model selection from a pool</a></li>' in page
    assert "<h2>Model selection from a pool</h2>" in section_of(page, "selection")


def test_setup_lines_come_from_the_run(selection):
    assert "Pool: 3 members; 3 targets (t_one, t_two, t_three) from digits, wine, each held out in turn." in selection
    assert "K = 8 labelled training examples of the target, drawn 2 times" in selection
    assert "learning rate 0.003 (default), 0.01 (cnn), batch size 8, 2 epochs, weight decay 0" in selection


def test_pool_table_shows_each_member(selection):
    pool = _captioned(_block(selection, "selection-pool"), "the pool in its order")
    # family, kind, fine-tunes, parameters, source dataset, classes, rows, metric, val metric
    assert table_row(pool, "cnn_a") == ["cnn", "trained", "all layers", "12,345", f"digits {ESCAPED}",
                                         f"3: 0, {ESCAPED}, 2", "321", "accuracy", "0.988"]  # fmt: skip
    assert table_row(pool, "cnn_a_head")[1:3] == ["trained, weights of cnn_a", "head only"]
    # mlp_b's member.json is missing: a note and a row of dashes, in the pool's order
    assert table_row(pool, "mlp_b") == [MISSING] * 9
    assert "mlp_b: not available: results/pool/members/mlp_b/member.json not found (run the pool stage)" in selection
    assert pool.index("<td>cnn_a</td>") < pool.index("<td>cnn_a_head</td>") < pool.index("<td>mlp_b</td>")


def test_selector_table_in_the_summary_order(selection):
    block = _block(selection, "selection-comparison")
    table = _captioned(block, "every selector on K = 8 examples, 2 redraws per target")
    assert "<th>selector</th>" in table and '<th class="num">interval coverage (nominal 0.8)</th>' in table
    positions = [table.index(f"<tr><td>{name}</td>") for name in ("random", "logme", "meta")]
    assert positions == sorted(positions)
    # targets, tau, regret, median regret, hit3, selection ms, coverage, |error|, p vs meta
    assert table_row(table, "random") == ["3", "-0.050 ±0.100", "0.200 ±0.020", "0.100", "0.500 ±0.250",
                                           "0.237 ±0.024", MISSING, MISSING, "&lt;0.001"]  # fmt: skip
    assert table_row(table, "logme")[5:] == ["337 ±34", MISSING, MISSING, MISSING]  # no paired test: p is null
    assert table_row(table, "meta") == ["3", "0.450 ±0.100", "0.050 ±0.020", "0.025", "0.900 ±0.250",
                                         "877 ±88", "0.833", "0.031", "reference"]  # fmt: skip
    assert "95% t-intervals over the targets" in block and "fitted leave one\n  target out" in block


def test_selector_figure_plots_the_table(tmp_path, monkeypatch):
    """Weighted tau and top-1 regret side by side, one row per selector: each dot and bar the table's cells."""
    drawn = record_dot_figures(monkeypatch)
    section = _build(tmp_path, _selection_params(SELECTION_RAW), _write_selection_results)
    (panels, share_x), = drawn
    assert not share_x and [panel["xlabel"].split(" (")[0] for panel in panels] == ["weighted τ", "top-1 regret"]
    assert all(not panel["log_x"] and panel["reference"] == 0.0 for panel in panels)
    block = _block(section, "selection-comparison")
    table = _captioned(block, "every selector on K = 8 examples")
    summary = {row["selector"]: row for row in _summary()["table"]}
    for panel, column, key in ((panels[0], 1, "tau"), (panels[1], 2, "regret")):
        assert [row["label"] for row in panel["rows"]] == ["random", "logme", "meta"]  # the table's order
        for row in panel["rows"]:
            half = row["high"] - row["value"]
            assert f"{row['value']:.3f} ±{half:.3f}" == table_row(table, row["label"])[column]
            assert row["value"] == summary[row["label"]][key]
            assert (half, row["value"] - row["low"]) == pytest.approx((summary[row["label"]][f"{key}_ci"],) * 2)
            assert row["color"] == ("C1" if row["label"] == "meta" else "C0")
    sources = re.findall(r'<img\s+src="([^"]*)"', block)
    assert len(sources) == 1 and base64.b64decode(sources[0].split(",", 1)[1]).startswith(PNG_SIGNATURE)
    assert block.index("<img") < block.index("<caption>every selector")


def test_selector_without_an_interval_is_a_dot_without_a_bar(tmp_path, monkeypatch):
    drawn = []
    monkeypatch.setattr(figures, "interval_dot_figure", lambda panels, share_x=False: drawn.append(panels) or "")

    def without_tau_intervals(root: Path) -> None:
        _write_selection_results(root)
        table = [{**row, "tau_ci": None} for row in _summary()["table"]]
        write_json(root / "selection" / "summary.json", {**_summary(), "table": table})

    section = _build(tmp_path, _selection_params(SELECTION_RAW), without_tau_intervals)
    tau = {row["label"]: row for row in drawn[0][0]["rows"]}
    assert tau["meta"]["value"] == 0.45 and np.isnan(tau["meta"]["low"]) and np.isnan(tau["meta"]["high"])
    assert table_row(_captioned(section, "every selector"), "meta")[1] == "0.450"  # the table: the mean alone


def test_summary_reads_the_selector_table(page, selection):
    """The meta selector's tau and regret, and the best other selector's by tau, as the selector table prints them."""
    table = _captioned(_block(selection, "selection-comparison"), "every selector on K = 8 examples")
    figure, sentence, link = summary_row(page, "Model selection")
    meta, logme = table_row(table, "meta"), table_row(table, "logme")
    assert link == "selection-comparison" and figure == meta[1] == "0.450 ±0.100"
    assert f"weighted τ {figure} and its choice has top-1 regret {meta[2]} (95% intervals over {meta[0]} targets)" in sentence
    assert sentence.endswith(f"the best other selector by τ, logme: τ {logme[1]}, regret {logme[2]}.")


def test_scatter_plots_the_meta_prediction_against_the_truth(tmp_path, monkeypatch):
    drawn = []
    original = figures.score_truth_figure

    def spy(panels, xlabel, ylabel, diagonal=True):
        drawn.append((panels, xlabel, ylabel, diagonal))
        return original(panels, xlabel, ylabel, diagonal)

    monkeypatch.setattr(figures, "score_truth_figure", spy)
    section = _build(tmp_path, _selection_params(SELECTION_RAW), _write_selection_results)
    (panels, xlabel, ylabel, diagonal), = drawn
    assert diagonal and xlabel.startswith("predicted metric (meta)") and ylabel == "fine-tuned accuracy"
    assert [panel["title"] for panel in panels] == ["t_one  τ +0.60", "t_two  τ -0.10", "t_three  τ +1.00"]
    points = {(panel["title"].split()[0], point["label"]): point for panel in panels for point in panel["points"]}
    assert ("t_three", "mlp_b") not in points  # its fine-tuning failed: no ground truth to plot
    assert len(points) == len(TRUTH) - 1
    for (target, member), point in points.items():
        assert point["x"] == pytest.approx(TRUTH[(target, member)] - 0.01)  # the mean over the redraws
        assert point["y"] == pytest.approx(TRUTH[(target, member)])
        assert (point["low"], point["high"]) == pytest.approx((point["x"] - INTERVAL, point["x"] + INTERVAL))
    chosen = {target for target, _ in points if points[(target, "cnn_a")]["chosen"]}
    assert chosen == {"t_one", "t_two"}  # t_two's tie goes to the earlier member
    assert points[("t_three", "cnn_a_head")]["chosen"] and not points[("t_two", "mlp_b")]["chosen"]
    assert len({points[(t, "cnn_a")]["color"] for t in TARGETS}) == 1  # a member has one colour in every panel
    block = _block(section, "selection-scores")
    sources = re.findall(r'<img\s+src="([^"]*)"', block)
    assert len(sources) == 1 and base64.b64decode(sources[0].split(",", 1)[1]).startswith(PNG_SIGNATURE)
    assert "predicted metric (mean over redraws) against its fine-tuned metric" in block


def test_scatter_without_meta_uses_logme(tmp_path, monkeypatch):
    drawn = []
    monkeypatch.setattr(figures, "score_truth_figure", lambda *args, **kwargs: drawn.append((args, kwargs)) or "")

    def without_meta(root: Path) -> None:
        _write_selection_results(root)
        scores = _scores_frame()
        write_parquet(root / "selection" / "scores.parquet", scores[scores["selector"] != "meta"])

    section = _build(tmp_path, _selection_params(SELECTION_RAW), without_meta)
    ((panels, xlabel, _), kwargs), = drawn
    assert kwargs == {"diagonal": False} and xlabel.startswith("LogME score")
    assert panels[0]["points"][0]["x"] == pytest.approx(0.5)  # cnn_a's LogME: 0 and 1 over the two redraws
    assert "no meta selector in the results: x is the logme score" in section


def test_compute_table_and_median_speedup(selection):
    block = _block(selection, "selection-compute")
    table = _captioned(block, "the meta selector")
    positions = [table.index(f"<tr><td>{target}</td>") for target in TARGETS]
    assert positions == sorted(positions)  # the targets' order, not the summary's
    # members, whole pool s, selection s, selection + one s, speedup, best, chosen
    assert table_row(table, "t_two") == ["3", "4.50", "0.30", "2.25", "2.00×", "0.750", "0.675"]
    assert table_row(table, "t_one")[4] == "0.50×"
    assert "Median speedup over 3 targets: 2.00× (2 of 3 faster than fine-tuning the whole pool" in block


def test_ground_truth_grid_shows_failed_runs_as_their_state(selection):
    block = _block(selection, "selection-truth")
    grid = _captioned(block, "every member fine-tuned on every target")
    assert "<th>target</th>" in grid and all(f'<th class="num">{member}</th>' in grid for member in MEMBERS)
    # classes, train rows, metric, cnn_a, cnn_a_head, mlp_b, best
    assert table_row(grid, "t_one") == ["2", "40", "accuracy", "0.900", "0.700", "0.800", "cnn_a"]
    assert table_row(grid, "t_three") == ["3", "100", "accuracy", "0.950", "0.950", "failed", "cnn_a, cnn_a_head"]
    assert f"t_three / mlp_b: failed: out of memory {ESCAPED}" in block


def test_selection_off_in_the_profile_is_said(tmp_path):
    section = _build(tmp_path, copy.deepcopy(BASE_RAW))
    assert OFF in section and "<img" not in section and "<table" not in section and "not available" not in section
    # a summary written with the capability off, read with it on, says so too
    stale = _build(tmp_path / "stale", _selection_params(SELECTION_RAW),
                   lambda root: write_json(root / "selection" / "summary.json", {"enabled": False}))  # fmt: skip
    assert OFF in stale and "<img" not in stale and "<table" not in stale


def test_missing_outputs_become_notes(tmp_path):
    section = _build(tmp_path, _selection_params(SELECTION_RAW))
    for stage, folder in (("selection", "selection"), ("pool", "pool"), ("pool_finetune", "pool_finetune")):
        assert f"not available: results/{folder}/ not found (run the {stage} stage)" in section
    assert "<img" not in section and "<table" not in section
    assert "Pool: 3 members" in section  # the setup still comes from the params

    def without_scores_and_summary(root: Path) -> None:
        _write_selection_results(root)
        (root / "selection" / "scores.parquet").unlink()
        (root / "selection" / "summary.json").write_text("{not json", encoding="utf-8")

    partial = _build(tmp_path / "partial", _selection_params(SELECTION_RAW), without_scores_and_summary)
    assert "not available: results/selection/scores.parquet not found (run the selection stage)" in partial
    assert "not available: results/selection/summary.json could not be read (JSONDecodeError" in partial
    assert "<img" not in partial
    assert "<caption>every selector" not in partial and "<caption>the meta selector" not in partial
    assert table_row(_captioned(partial, "every member fine-tuned"), "t_two")[3:6] == ["0.600", "0.500", "0.750"]
    assert table_row(_captioned(partial, "the pool in its order"), "cnn_a")[0] == "cnn"


def test_damaged_frames_become_notes(tmp_path):
    def damaged(root: Path) -> None:
        _write_selection_results(root)
        write_parquet(root / "pool_finetune" / "truth.parquet", _truth_frame().drop(columns=["truth"]))
        summary = {**_summary(), "table": "not a list", "compute": []}
        write_json(root / "selection" / "summary.json", summary)

    section = _build(tmp_path, _selection_params(SELECTION_RAW), damaged)
    assert "not available: results/pool_finetune/truth.parquet lacks columns truth" in section
    assert "not available: selection/summary.json has no selector table" in section
    assert "not available: selection/summary.json has no compute rows" in section
    assert "<img" not in section and "<caption>every member fine-tuned" not in section


def test_score_truth_figure_is_a_deterministic_png():
    def panels(count: int) -> list[dict]:
        return [{"title": f"target {i}", "points": [
            {"label": "a", "color": "C0", "x": 0.5 + 0.01 * i, "y": 0.6, "low": 0.4, "high": 0.7, "chosen": True},
            {"label": "b", "color": "C1", "x": -3.0, "y": 0.8, "low": np.nan, "high": np.nan, "chosen": False},
        ]} for i in range(count)]  # fmt: skip

    five = figures.score_truth_figure(panels(5), "x", "y")  # two rows, three hidden panels
    assert five == figures.score_truth_figure(panels(5), "x", "y")
    assert five != figures.score_truth_figure(panels(5), "x", "y", diagonal=False)
    for uri in (five, figures.score_truth_figure(panels(1), "x", "y", diagonal=False)):
        assert uri.startswith("data:image/png;base64,")
        assert base64.b64decode(uri.split(",", 1)[1]).startswith(PNG_SIGNATURE)


def test_the_stage_outputs_the_section_reads_are_report_deps():
    from metahpo import pipeline

    deps = set(pipeline.STAGE_BY_NAME["report"].deps)
    read = {"results/pool/members", "results/pool_finetune/truth.parquet", "results/selection/summary.json",
            "results/selection/draws.parquet", "results/selection/scores.parquet"}  # fmt: skip
    assert read <= deps, sorted(read - deps)
