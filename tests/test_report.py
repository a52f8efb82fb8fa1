"""The HTML report: sections, self-containment, escaping, missing inputs, atomic write, rendering."""

from __future__ import annotations

import base64
import copy
import io
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from markupsafe import escape

from metahpo.errors import MetahpoError
from metahpo.hpo.regret_summary import summarize
from metahpo.io import write_json, write_parquet
from metahpo.report import SECTIONS, build_report, builder, figures
from metahpo.report.section import ReportInputs, Section, SectionRegistry
from metahpo.report.tables import MISSING, Table, config_table
from report_pages import HOSTILE, page, unchecked_params
from report_pages import section as _section
from report_pages import summary_row

ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SECTION_IDS = (
    "summary", "tasks", "sweeps", "loto", "strategies", "convergence", "fewshot", "selection", "lr_control", "provenance",
)  # fmt: skip
TASKS = {"digits-mlp": "digits", "wine-mlp": "wine", "digits-cnn": "digits"}
TRAINED = ("digits-mlp", "digits-cnn")  # wine-mlp has no train_recommended result
GRID = [(lr, hidden) for lr in (0.001, 0.01, 0.1) for hidden in (64, 128)]
RANDOM = [(0.0031, 96), (0.047, 200)]
EPOCHS = 4
METHODS = ("surrogate", "nearest", "portfolio", "default", "safe")
KS = (1, 3)


RAW_PARAMS = {
    "datasets": {"digits": {"source": "digits"}, "wine": {"source": f"wine {HOSTILE}"}},
    "tasks": {task: {"dataset": dataset, "family": task.split("-")[1]} for task, dataset in TASKS.items()},
    "families": {
        family: {
            "space": {
                "lr": {"values": [0.001, 0.01, 0.1], "sample": "loguniform"},
                "hidden": {"values": [64, 128]},
            },
            "default": {"lr": 0.001, "hidden": 64},
        }
        for family in ("mlp", "cnn")
    },
    "report": {"title": f"Report test {HOSTILE}"},
}


def _test_scores(metric: str, final: float) -> dict[str, float]:
    """Every test metric of the task type whose primary metric is ``metric`` (NaN: failed run)."""
    if metric == "f1":  # extractive QA (SQuAD v2 style), with example counts and a NaN group
        return {
            "exact": final - 0.05, "f1": final - 0.01, "total": 30.0, "HasAns_exact": final - 0.04,
            "HasAns_f1": final, "HasAns_total": 30.0, "NoAns_exact": float("nan"), "NoAns_f1": float("nan"),
            "NoAns_total": 0.0,
        }  # fmt: skip
    return {"accuracy": final - 0.01, "macro_f1": final - 0.02, "macro_precision": final - 0.03, "macro_recall": final}


def _sweep_frame(task: str, dataset: str, family: str, rng: np.random.Generator, metric="accuracy") -> pd.DataFrame:
    rows = []
    trials = [("grid", i, hp) for i, hp in enumerate(GRID)] + [("random", i, hp) for i, hp in enumerate(RANDOM)]
    for index, (search, number, (lr, hidden)) in enumerate(trials):
        state = {4: "diverged", 5: "failed"}.get(index, "ok")
        final = float(0.6 + 0.3 * rng.random()) if state == "ok" else float("nan")
        curve = list(np.linspace(0.3, final, EPOCHS)) if state == "ok" else []
        scores = _test_scores(metric, final) if state == "ok" else {}
        rows.append(
            {
                "task": task, "dataset": dataset, "family": family, "trial_id": f"{search}-{number:04d}",
                "search": search, "seed": 0, "hp.lr": lr, "hp.hidden": hidden,
                "config": json.dumps({"lr": lr, "hidden": hidden}), "state": state,
                "message": f"loss is NaN {HOSTILE}" if state == "diverged" else ("boom" if state == "failed" else ""),
                "epochs_run": len(curve), "curve_train_loss": [1.0 - v for v in curve],
                "curve_val_loss": [1.1 - v for v in curve], "curve_val_metric": curve,
                "curve_seconds": [0.5] * len(curve), "metric": metric, "val_metric": final,
                "test_metric": scores.get(metric, float("nan")), "test_metrics": json.dumps(scores, sort_keys=True),
                "test_accuracy": scores.get("accuracy", float("nan")),
                "test_macro_f1": scores.get("macro_f1", float("nan")),
                "seconds": 2.0 + index, "device": "cpu",
            }
        )  # fmt: skip
    return pd.DataFrame(rows)


def _loto_frame(tasks, metric="accuracy") -> pd.DataFrame:
    rows = [
        {
            "task": task, "family": task.split("-")[1], "method": method, "k": k,
            "regret": 0.05 / k + 0.01 * position, "metric": metric, "val_metric": 0.9 - 0.05 / k,
            "test_metric": 0.88 - 0.01 * position, "runs": k, "seconds": 2.5 * k, "grid_runs": len(GRID),
            "grid_seconds": 27.0, "grid_best_val_metric": 0.9, "grid_best_test_metric": 0.89,
            "configs": json.dumps([{"lr": 0.01 * rank, "hidden": 64} for rank in range(1, k + 1)]), "note": "",
            "predicted": 0.97, "lower": 0.9, "upper": 1.0,
            # the safe rule falls back on wine-mlp only, with a reason that must be escaped
            "fallback": "default" if method == "safe" and task == "wine-mlp" else "",
            "reason": f"unlike every prior task {HOSTILE}" if method == "safe" and task == "wine-mlp" else "",
        }
        for task in tasks
        for position, method in enumerate(METHODS)
        for k in KS
    ]  # fmt: skip
    return pd.DataFrame(rows)


def _train_metrics(task: str, metric: str, test_metric: float) -> dict:
    scores = _test_scores(metric, test_metric + 0.01)
    return {
        "task": task, "family": task.split("-")[1], "config": {"lr": 0.01, "hidden": 64}, "method": "surrogate",
        "state": "ok", "metric": metric, "test_metric": test_metric, "test_metrics": scores,
        "test_accuracy": scores.get("accuracy", float("nan")), "test_macro_f1": scores.get("macro_f1", float("nan")),
        "val_metric": 0.92, "best_val_metric": 0.93, "seconds": 12.345, "epochs_run": 20,
        "epochs_to_convergence": 6, "seconds_to_convergence": 3.21, "threshold": 0.95, "device": "cpu",
    }  # fmt: skip


def _write_results(root: Path) -> None:
    """A small results tree in the stage contracts of docs/ARCHITECTURE.md."""
    rng = np.random.default_rng(0)
    for dataset, source in (("digits", "digits"), ("wine", f"wine {HOSTILE}")):
        # wine's metahpo.json predates task types: it has none and reads as classification
        task_type = {"task_type": "classification"} if dataset == "digits" else {}
        write_json(
            root / "data" / dataset / "metahpo.json",
            {
                **task_type, "dataset": dataset, "source": source, "modality": "tabular", "input_column": "x",
                "label_column": "y", "num_classes": 3, "label_names": ["a", "b", "c"], "input_shape": [13],
                "split_sizes": {"train": 100, "validation": 20, "test": 30}, "carved": ["validation", "test"],
            },
        )  # fmt: skip
        write_json(
            root / "metafeatures" / f"{dataset}.json",
            {
                "dataset": dataset,
                "features": {"n_rows": 100.0, "n_classes": 3.0, "mean_skew": 0.25, "token_length": None, "lr_acc": 0.8},
                "groups": {"simple": ["n_rows", "n_classes"], "statistical": ["mean_skew", "token_length"],
                           "landmarkers": ["lr_acc"]},
                "seconds": {"simple": 0.01, "statistical": 0.2, "lr_acc": 1.5},
            },
        )  # fmt: skip
    for task, dataset in TASKS.items():
        write_parquet(root / "sweep" / f"{task}.parquet", _sweep_frame(task, dataset, task.split("-")[1], rng))
    write_parquet(root / "meta" / "loto.parquet", _loto_frame(TASKS))
    write_json(
        root / "meta" / "recommendations.json",
        {task: {"method": "safe", "config": {"lr": 0.01, "hidden": 64}, "predicted_score": 0.9,
                "fallback": "default" if task == "wine-mlp" else None,
                "reason": "2 prior tasks: the safe rule needs 3" if task == "wine-mlp" else ""} for task in TASKS},
    )
    for task in TRAINED:
        write_json(root / "train" / task / "metrics.json", _train_metrics(task, "accuracy", 0.91234))


# the replay benchmark of family mlp: regret per (strategy, task, seed) over trials 1..4
BENCHMARK_REGRET = {
    "transfer_bo": {
        ("digits-mlp", 0): [0.2, 0.1, 0.0, 0.0], ("digits-mlp", 1): [0.1, 0.1, 0.05, 0.0],
        ("wine-mlp", 0): [0.4, 0.2, 0.2, 0.01], ("wine-mlp", 1): [0.3, 0.3, 0.1, 0.0],
    },
    "random": {
        ("digits-mlp", 0): [0.9, 0.6, 0.6, 0.3], ("digits-mlp", 1): [0.7, 0.7, 0.2, 0.2],
        ("wine-mlp", 0): [1.0, 0.8, 0.5, 0.5], ("wine-mlp", 1): [0.8, 0.4, 0.4, 0.04],
    },
}  # fmt: skip
TRIAL_SECONDS = {"digits-mlp": 2.0, "wine-mlp": 30.0}  # cumulative cost: 2..120 s, a log-scale cost axis
SINGLE_TASK_NOTE = "family cnn has one task (digits-cnn): nothing to hold out against"
# real tuning of digits-mlp: (state, val_metric, test_metric, seconds) per trial
TUNE_TRIALS = {
    "transfer_bo": [("ok", 0.90, 0.88, 2.0), ("ok", 0.95, 0.94, 3.0), ("ok", 0.93, 0.92, 2.0)],
    "random": [("ok", 0.70, 0.69, 1.0), ("diverged", float("nan"), float("nan"), 1.0), ("ok", 0.85, 0.84, 4.0)],
}


def _benchmark_regret_frame() -> pd.DataFrame:
    rows = [
        {
            "family": "mlp", "strategy": strategy, "task": task, "seed": seed, "trial": trial, "regret": value,
            "cost": trial * TRIAL_SECONDS[task], "index": trial - 1, "epochs": None,
        }
        for strategy, runs in BENCHMARK_REGRET.items()
        for (task, seed), values in runs.items()
        for trial, value in enumerate(values, start=1)
    ]  # fmt: skip
    return pd.DataFrame(rows)


def _tune_frame(task: str) -> pd.DataFrame:
    rows = []
    for strategy, trials in TUNE_TRIALS.items():
        best, cumulative = float("nan"), 0.0
        for trial, (state, val, test, seconds) in enumerate(trials, start=1):
            best, cumulative = np.fmax(best, val), cumulative + seconds
            rows.append(
                {
                    "task": task, "family": "mlp", "strategy": strategy, "trial": trial,
                    "config": json.dumps({"lr": 0.01 * trial, "hidden": 64}), "state": state, "val_metric": val,
                    "best_val_metric": best, "test_metric": test, "seconds": seconds, "cumulative_seconds": cumulative,
                    "note": f"baseline {HOSTILE}" if strategy == "random" else None,
                }
            )  # fmt: skip
    return pd.DataFrame(rows)


# metrics.objective_resolution records as summary.json holds them (NaN as null: no validation size)
RESOLUTION = [
    {"task": "digits-mlp", "pool": 64, "n_validation": 270.0, "one_example": 0.0342, "within_0.05": 0.5, "within_0.01": 0.125},
    {"task": "wine-mlp", "pool": 64, "n_validation": None, "one_example": None, "within_0.05": 0.25, "within_0.01": 0.25},
]  # fmt: skip


def _write_strategy_results(root: Path) -> None:
    """The benchmark and tune stages' outputs (docs/ARCHITECTURE.md), for family mlp and task digits-mlp."""
    regret = _benchmark_regret_frame()
    write_parquet(root / "benchmark" / "regret.parquet", regret)
    summary = {
        "mlp": {"records": summarize(regret).to_dict("records"), "note": None, "resolution": RESOLUTION},
        "cnn": {"records": [], "note": SINGLE_TASK_NOTE},
    }
    write_json(root / "benchmark" / "summary.json", summary)
    write_parquet(root / "tune" / "digits-mlp.parquet", _tune_frame("digits-mlp"))


def _build(tmp_path: Path, with_strategies: bool) -> str:
    results = tmp_path / "results"
    _write_results(results)
    if with_strategies:
        _write_strategy_results(results)
    params_path = tmp_path / "params.yaml"
    params_path.write_text(yaml.safe_dump(RAW_PARAMS), encoding="utf-8")
    build_report(unchecked_params(RAW_PARAMS), params_path, results, tmp_path / "index.html")
    return (tmp_path / "index.html").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("run")
    params_path = root / "params.yaml"
    params_path.write_text(yaml.safe_dump(RAW_PARAMS), encoding="utf-8")
    _write_results(root / "results")
    out_path = root / "results" / "report" / "index.html"
    build_report(unchecked_params(RAW_PARAMS), params_path, root / "results", out_path)
    return out_path


@pytest.fixture(scope="module")
def html(report: Path) -> str:
    return report.read_text(encoding="utf-8")



def test_every_section_is_present_and_listed_in_the_contents(html):
    for section_id in SECTION_IDS:
        assert f'<section id="{section_id}">' in html
        assert f'href="#{section_id}"' in html


def _contents_and_sections(html: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(id, heading) of each entry of the table of contents, and of each section element, in page order."""
    contents = re.search(r'<nav id="contents">(.*?)</nav>', html, re.S).group(1)
    return (
        re.findall(r'<li><a href="#([^"]+)">([^<]*)</a></li>', contents),
        re.findall(r'<section id="([^"]+)">\s*<h2>([^<]*)</h2>', html),
    )


def test_contents_and_sections_are_the_registered_sections_in_order(html):
    contents, sections = _contents_and_sections(html)
    registered = [(section.id, str(escape(section.heading))) for section in SECTIONS]
    assert len(registered) == len(SECTION_IDS)
    assert contents == registered
    assert sections == registered


def test_a_registered_section_appears_in_the_page(tmp_path, monkeypatch):
    """One more section object registered (here reusing provenance's partial): no other file changes."""
    registry = SectionRegistry()
    for section in SECTIONS:
        registry.register(section)

    def build(inputs: ReportInputs) -> dict:
        table = Table.build([("task", False)], [[task] for task in inputs.params.tasks])
        return {"notes": [f"dummy note {HOSTILE}"], "table": table, "params_text": None}

    dummy = registry.register(Section("dummy", f"Dummy {HOSTILE}", build, template="sections/provenance.html"))
    monkeypatch.setattr(builder, "SECTIONS", registry)
    html = _build(tmp_path, with_strategies=False)
    contents, sections = _contents_and_sections(html)
    expected = [(section_id, str(escape(SECTIONS.get(section_id).heading))) for section_id in SECTION_IDS]
    assert contents == sections == expected + [("dummy", f"Dummy {ESCAPED}")]
    body = _section(html, "dummy")
    assert f'class="note">dummy note {ESCAPED}' in body and HOSTILE not in html
    assert all(f"<td>{task}</td>" in body for task in TASKS) and "<pre>" not in body
    assert registry.get("dummy") is dummy


def test_section_ids_are_unique_and_partials_default_to_their_id():
    registry = SectionRegistry()
    registry.register(Section("one", "One", dict))
    assert registry.get("one").template == "sections/one.html"
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(Section("one", "Another one", dict))
    assert registry.ids() == ["one"]
    for section in SECTIONS:  # every registered section ships its partial
        assert (Path(builder.__file__).parent / "templates" / section.template).is_file(), section.id


def test_no_external_resources(html):
    # one script, inline and small (sorting tables, opening details for print), that loads nothing
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S | re.I)
    assert len(scripts) == 1 and scripts[0][0].strip() == ""
    assert len(scripts[0][1].encode()) < 4096
    assert not re.search(r"fetch\(|XMLHttpRequest|import\(|\.src\s*=|WebSocket|sendBeacon", scripts[0][1])
    assert "<link" not in html.lower()
    for attribute, value in re.findall(r'\b(src|href)\s*=\s*"([^"]*)"', html):
        assert value.startswith(("data:", "#")), f"{attribute}={value[:60]} is an external reference"
    assert "@import" not in html and "url(" not in html


def test_images_are_inline_pngs(html):
    from PIL import Image

    sources = re.findall(r'<img\s+src="([^"]*)"', html)
    # per task: hp figure + learning curves; plus the loto trade-off figure
    assert len(sources) == 2 * len(TASKS) + 1
    for source in sources:
        assert source.startswith("data:image/png;base64,")
        data = base64.b64decode(source.split(",", 1)[1])
        assert data.startswith(PNG_SIGNATURE)
        image = Image.open(io.BytesIO(data))
        assert image.mode == "P" and len(image.getcolors()) <= figures.PALETTE_COLORS  # palette PNGs: a third the bytes


def test_a_palette_png_is_far_smaller_than_the_full_colour_one_and_looks_the_same():
    """A figure like the report's (lines, 95% bands, legend) as a full-colour PNG and as the report stores it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from PIL import Image

    rng = np.random.default_rng(0)
    figure = Figure(figsize=(6.3, 3.2))
    ax = figure.subplots()
    x = np.arange(1, 31)
    for i in range(10):
        mean = np.sort(rng.random(30))[::-1]
        ax.plot(x, mean, color=f"C{i}", label=f"strategy {i}")
        ax.fill_between(x, mean - 0.1, mean + 0.1, color=f"C{i}", alpha=0.15, linewidth=0)
    ax.set_xscale("log")
    ax.legend(fontsize="small")
    palette = base64.b64decode(figures.to_data_uri(figure).split(",", 1)[1])
    FigureCanvasAgg(figure)
    full = io.BytesIO()
    figure.savefig(full, format="png", dpi=figures.DPI, facecolor="white")
    assert len(palette) < 0.45 * len(full.getvalue())
    shown, truth = (np.asarray(Image.open(io.BytesIO(b)).convert("RGB"), dtype=int) for b in (palette, full.getvalue()))
    assert shown.shape == truth.shape and np.abs(shown - truth).mean() < 0.8  # of 255 per channel


def test_config_table_gives_each_hyperparameter_its_own_column():
    table = config_table(
        [("task", False)],
        [(["a"], {"lr": 0.001, "optimizer": "adam"}), (["b"], '{"lr": 0.1, "layers": 2}'), (["c"], None)],
    )
    assert table.columns == ["task", "layers", "lr", "optimizer"]  # the union, sorted
    assert table.rows == [["a", MISSING, "0.001", "adam"], ["b", "2", "0.1", MISSING], ["c", MISSING, MISSING, MISSING]]
    assert table.numeric == frozenset({1, 2})  # optimizer is categorical: left-aligned, sorted as text


def test_user_text_is_escaped(html):
    assert HOSTILE not in html
    tasks, sweeps, provenance = (_section(html, s) for s in ("tasks", "sweeps", "provenance"))
    assert f"wine {ESCAPED}" in tasks  # dataset source
    assert f"loss is NaN {ESCAPED}" in sweeps  # trial message
    assert ESCAPED in provenance  # the params YAML
    assert f"<title>Report test {ESCAPED}</title>" in html


def test_sections_show_the_results(html):
    sweeps = _section(html, "sweeps")
    # counts by state: 6 ok, 1 diverged, 0 oom, 1 failed, 8 total
    assert re.search(r'<td class="num">6</td><td class="num">1</td><td class="num">0</td><td class="num">1</td>'
                     r'<td class="num">8</td>', sweeps)  # fmt: skip
    top = re.search(r"<caption>top 5 by val accuracy</caption>(.*?)</table>", sweeps, re.S).group(1)
    assert '<th class="num">val accuracy</th><th class="num">test accuracy</th><th>all test metrics</th>' in top
    cells = re.findall(r"<tr>" + r"<td[^>]*>([^<]*)</td>" * 8, top)
    val_metrics, test_metrics = [float(row[4]) for row in cells], [float(row[5]) for row in cells]
    assert len(val_metrics) == 5 and val_metrics == sorted(val_metrics, reverse=True)
    assert test_metrics == pytest.approx([v - 0.01 for v in val_metrics], abs=1e-3)  # test_metric: accuracy
    compact = r"accuracy=0\.\d{3}, macro_f1=0\.\d{3}, macro_precision=0\.\d{3}, macro_recall=0\.\d{3}"
    assert re.fullmatch(compact, cells[0][6])
    loto = _section(html, "loto")
    for method in METHODS:
        assert f"<td>{method}</td>" in loto
    assert "grid (best)" in loto and "mean regret" in loto
    assert loto.count('<th class="num">test accuracy</th>') == len(TASKS)
    # the top-1 test summary: each task in its own metric, grid best then the methods in order
    top1 = re.search(r"<caption>test score of each method.*?</caption>(.*?)</table>", loto, re.S).group(1)
    assert "<tr><td>digits-mlp</td><td>accuracy</td>" + "".join(
        f'<td class="num">{value}</td>' for value in ("0.890", "0.880", "0.870", "0.860", "0.850", "0.840")
    ) + "</tr>" in top1
    # the safe rule's table: its verdict and interval per task, the three top-1 regrets side by side
    safe = re.search(r"<caption>safe rule top-1.*?</caption>(.*?)</table>", loto, re.S).group(1)
    assert ('<tr><td>digits-mlp</td><td>no</td><td>—</td><td class="num">0.970</td><td class="num">[0.900, 1.000]'
            '</td><td class="num">0.910</td><td class="num">0.080</td><td class="num">0.050</td>'
            '<td class="num">0.090</td></tr>') in safe  # fmt: skip
    assert f"<td>default</td><td>unlike every prior task {escape(HOSTILE)}</td>" in safe
    assert "safe rule: 1 of 3 held-out tasks fell back to the family&#39;s default config" in loto
    assert "interval held its actual normalised score in 3 of 3" in loto
    convergence = _section(html, "convergence")
    assert "0.912" in convergence and "12.3" in convergence and "3.2" in convergence  # 3 and 1 decimals
    assert "<td>accuracy</td>" in convergence and "macro_recall=0.922" in convergence
    # configs as columns, one per hyperparameter: the trained one, else (wine-mlp) the recommended one
    configs = re.search(r"<caption>the config each task trained</caption>(.*?)</table>", convergence, re.S).group(1)
    assert '<th>task</th><th>method</th><th>why this config</th><th class="num">hidden</th><th class="num">lr</th>' in configs
    assert _table_row(configs, "digits-mlp") == ["surrogate", MISSING, "64", "0.01"]
    # the safe rule's reason when it fell back to the family's default config
    assert _table_row(configs, "wine-mlp") == [
        "safe", "the family&#39;s default config: 2 prior tasks: the safe rule needs 3", "64", "0.01"
    ]
    provenance = _section(html, "provenance")
    assert "git revision" in provenance and "numpy version" in provenance
    assert "<pre>" in provenance


def test_loto_tasks_show_each_methods_configs_once_a_column_per_hyperparameter_collapsed(html):
    loto = _section(html, "loto")
    for task in TASKS:
        block = loto.split(f'<h3 id="loto-{task}">', 1)[1].split("<h3", 1)[0]
        details = block.split("<details>", 1)[1].split("</details>", 1)[0]
        assert details.lstrip().startswith(f"<summary>{task}: ")
        regret_table, configs = details.split("<caption>configs in each method&#39;s order</caption>", 1)
        assert "<th>configs</th>" not in regret_table  # no config written out as text
        assert '<th>method</th><th class="num">rank</th><th class="num">hidden</th><th class="num">lr</th>' in configs
        rows = re.findall(r"<tr><td>(\w+)</td>" + r'<td class="num">([^<]*)</td>' * 3 + "</tr>", configs)
        # the largest k's configs, each once, in the method's order (a smaller k tries a prefix of them)
        assert rows == [(m, str(rank), "64", f"{0.01 * rank:g}") for m in METHODS for rank in range(1, max(KS) + 1)]


def test_loto_tradeoff_figure_plots_each_methods_mean_regret_and_cost_with_their_t_intervals():
    from metahpo.hpo.regret_summary import t_half_width
    from metahpo.report.common import loto_means
    from metahpo.report.sections import loto as section

    frame = _loto_frame(TASKS)
    frame.loc[frame["task"] == "wine-mlp", ["regret", "seconds"]] *= [2.0, 3.0]  # tasks differ: a real interval
    series = {entry["label"]: entry for entry in section._tradeoff_series(loto_means(frame), list(METHODS))}
    assert list(series) == list(METHODS)
    for method, entry in series.items():
        assert list(entry["trials"]) == list(KS)
        for position, k in enumerate(KS):
            rows = frame[(frame["method"] == method) & (frame["k"] == k)]
            regret, share = rows["regret"], rows["seconds"] / rows["grid_seconds"]
            assert entry["mean"].iloc[position] == pytest.approx(regret.mean())
            assert entry["high"].iloc[position] - entry["mean"].iloc[position] == pytest.approx(t_half_width(regret))
            assert entry["cost"].iloc[position] == pytest.approx(share.mean())
            assert entry["cost_high"].iloc[position] - share.mean() == pytest.approx(t_half_width(share))
            assert t_half_width(regret) > 0


def test_summary_reads_the_recommended_config_from_the_loto_tables(html):
    """The summary's figures are the loto section's cells: safe's and the default's k = 1 regret, the seconds share."""
    figure, sentence, link = summary_row(html, "Recommended configuration")
    loto = _section(html, "loto")
    regret = re.search(r"<caption>mean regret ±95%.*?</caption>(.*?)</table>", loto, re.S).group(1)
    share = re.search(r"<caption>mean seconds spent.*?</caption>(.*?)</table>", loto, re.S).group(1)
    assert link == "loto" and f'id="{link}"' in html
    assert figure == _table_row(regret, "safe")[0] and "±" in figure
    assert f"mean regret {figure} (95% interval over {len(TASKS)} tasks)" in sentence
    assert f"at {_table_row(share, 'safe')[0]} of the grid" in sentence
    assert f"family default&#39;s regret is {_table_row(regret, 'default')[0]}" in sentence
    assert f"surrogate top-1&#39;s regret is {_table_row(regret, 'surrogate')[0]}" in sentence
    # the interval is a 95% t-interval over the held-out tasks of each task's top-1 regret
    loto_rows = _loto_frame(TASKS)
    values = loto_rows[(loto_rows["method"] == "safe") & (loto_rows["k"] == 1)]["regret"]
    from metahpo.hpo.regret_summary import t_half_width

    assert figure == f"{values.mean():.3f} ±{t_half_width(values):.3f}"


def test_summary_of_missing_and_disabled_capabilities_is_one_line_each(html):
    assert summary_row(html, "Transfer HPO")[1] == "not run: results/benchmark/ not found (run the benchmark stage)"
    for capability, key, anchor in (("Meta-learned initialization", "fewshot", "fewshot"),
                                    ("Model selection", "selection", "selection"),
                                    ("Learning-rate controller", "lr_control", "lr_control")):  # fmt: skip
        figure, note, link = summary_row(html, capability)
        assert (figure, note, link) == (MISSING, f"off in this profile ({key}: null in the params)", anchor)


def test_sweep_details_are_collapsed_and_name_their_task(html):
    sweeps = _section(html, "sweeps")
    assert sweeps.count("<details>") == sweeps.count("</details>") == len(TASKS)
    for task in TASKS:
        block = sweeps.split(f'<h3 id="sweep-{task}">', 1)[1].split("<h3", 1)[0]  # the anchor stays outside
        details = block.split("<details>", 1)[1].split("</details>", 1)[0]
        assert details.lstrip().startswith(f"<summary>{task}: ")
        assert details.count("<img") == 2 and "<table" in details and "<img" not in block.replace(details, "")


def test_tasks_show_their_task_type(html):
    tasks = _section(html, "tasks")
    assert "<th>task type</th>" in tasks
    # digits says classification; wine's metahpo.json has no task_type and defaults to it
    for task in TASKS:
        assert re.search(rf"<tr><td>{task}</td>(<td[^>]*>[^<]*</td>){{4}}<td>classification</td>", tasks), task


def test_qa_task_shows_its_f1(tmp_path):
    """A QA-like task (primary metric f1) beside classification ones: every table names its metric."""
    raw = copy.deepcopy(RAW_PARAMS)
    raw["datasets"]["squad"] = {"source": "squad"}
    raw["tasks"]["squad-qa"] = {"dataset": "squad", "family": "qa"}
    raw["families"]["qa"] = copy.deepcopy(raw["families"]["mlp"])
    results = tmp_path / "results"
    _write_results(results)
    write_json(
        results / "data" / "squad" / "metahpo.json",
        {"dataset": "squad", "source": "squad", "task_type": "extractive_qa", "modality": "text",
         "split_sizes": {"train": 100, "validation": 20, "test": 30}, "carved": []},
    )  # fmt: skip
    write_json(
        results / "metafeatures" / "squad.json", {"dataset": "squad", "features": {}, "groups": {}, "seconds": {}}
    )
    qa_sweep = _sweep_frame("squad-qa", "squad", "qa", np.random.default_rng(1), metric="f1")
    write_parquet(results / "sweep" / "squad-qa.parquet", qa_sweep)
    loto = pd.concat([_loto_frame(TASKS), _loto_frame(["squad-qa"], metric="f1")], ignore_index=True)
    write_parquet(results / "meta" / "loto.parquet", loto)
    write_json(results / "train" / "squad-qa" / "metrics.json", _train_metrics("squad-qa", "f1", 0.7654))
    params_path = tmp_path / "params.yaml"
    params_path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    build_report(unchecked_params(raw), params_path, results, tmp_path / "index.html")
    html = (tmp_path / "index.html").read_text(encoding="utf-8")

    assert re.search(r"<tr><td>squad-qa</td>(<td[^>]*>[^<]*</td>){4}<td>extractive_qa</td>", _section(html, "tasks"))
    sweep = _section(html, "sweeps").split('id="sweep-squad-qa"', 1)[1].split("<h3", 1)[0]
    assert "<caption>top 5 by val f1</caption>" in sweep
    assert '<th class="num">val f1</th><th class="num">test f1</th>' in sweep and "test accuracy" not in sweep
    # all test metrics, compactly: example counts and metrics that do not apply (NaN NoAns_*) left out
    cells = re.findall(r"<tr>" + r"<td[^>]*>([^<]*)</td>" * 8, sweep)
    assert len(cells) == 5
    assert re.fullmatch(r"exact=0\.\d{3}, f1=0\.\d{3}, HasAns_exact=0\.\d{3}, HasAns_f1=0\.\d{3}", cells[0][6])
    assert float(cells[0][5]) == pytest.approx(float(cells[0][4]) - 0.01, abs=1e-3)  # test f1, not accuracy
    loto_block = _section(html, "loto").split('id="loto-squad-qa"', 1)[1]
    assert '<th class="num">test f1</th>' in loto_block and "test accuracy" not in loto_block
    assert "<tr><td>squad-qa</td><td>f1</td>" in _section(html, "loto")  # the top-1 test summary
    convergence = _section(html, "convergence")
    row = re.search(r"<tr><td>squad-qa</td>.*?</tr>", convergence).group(0)
    assert "<td>f1</td>" in row and ">0.765<" in row and "HasAns_f1=0.775" in row and "total" not in row


def test_missing_train_result_is_a_note_not_a_crash(html):
    convergence = _section(html, "convergence")
    note = r'class="note">wine-mlp: not available: results/train/wine-mlp/metrics.json not found'
    assert re.search(note, convergence)
    for task in TRAINED:
        assert f"{task}: not available" not in convergence


def test_missing_stage_outputs_become_notes(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    params_path = tmp_path / "params.yaml"
    params_path.write_text(yaml.safe_dump(RAW_PARAMS), encoding="utf-8")
    out_path = results / "report" / "index.html"
    build_report(unchecked_params(RAW_PARAMS), params_path, results, out_path)
    html = out_path.read_text(encoding="utf-8")
    for section_id in ("tasks", "sweeps", "loto", "convergence"):
        assert "not available" in _section(html, section_id)
    # a stage that wrote nothing is one note, not one per task
    assert _section(html, "sweeps").count('class="note"') == 1
    assert "results/sweep/ not found (run the sweep stage)" in html
    assert "<img" not in html


def test_sweep_without_finished_trials_is_a_note(tmp_path):
    results = tmp_path / "results"
    _write_results(results)
    sweep_path = results / "sweep" / "wine-mlp.parquet"
    frame = pd.read_parquet(sweep_path)
    write_parquet(sweep_path, frame.assign(state="oom", val_metric=float("nan")))
    params_path = tmp_path / "params.yaml"
    params_path.write_text(yaml.safe_dump(RAW_PARAMS), encoding="utf-8")
    build_report(unchecked_params(RAW_PARAMS), params_path, results, tmp_path / "index.html")
    sweeps = _section((tmp_path / "index.html").read_text(encoding="utf-8"), "sweeps")
    wine = sweeps.split('id="sweep-wine-mlp"', 1)[1].split("<h3", 1)[0]
    assert "not available: no trial finished with state ok" in wine
    assert "<img" not in wine
    assert sweeps.count("<img") == 2 * (len(TASKS) - 1)


def test_missing_results_dir_is_a_metahpo_error(tmp_path):
    with pytest.raises(MetahpoError, match="nowhere"):
        build_report(unchecked_params(RAW_PARAMS), tmp_path / "params.yaml", tmp_path / "nowhere", tmp_path / "index.html")


def test_write_is_atomic_and_leaves_no_temp_files(report):
    assert sorted(p.name for p in report.parent.iterdir()) == ["index.html"]


def test_figures_are_deterministic(tmp_path):
    """A second build over the same results gives the same images."""
    results = tmp_path / "results"
    _write_results(results)
    _write_strategy_results(results)
    params_path = tmp_path / "params.yaml"
    params_path.write_text(yaml.safe_dump(RAW_PARAMS), encoding="utf-8")
    first, second = tmp_path / "a.html", tmp_path / "b.html"
    for out in (first, second):
        build_report(unchecked_params(RAW_PARAMS), params_path, results, out)
    images = [re.findall(r'<img\s+src="([^"]*)"', out.read_text(encoding="utf-8")) for out in (first, second)]
    assert images[0] == images[1] and images[0]


# --- rendering in a real browser ---------------------------------------------------------------


def _browser_or_skip():
    """A headless Chromium driver; skipped when unavailable, except in CI, where that fails."""
    missing = [name for name in ("chromium", "chromedriver") if shutil.which(name) is None]
    try:
        from selenium import webdriver
    except ImportError:
        missing.append("the selenium package (pip install selenium)")
    if missing:
        reason = "headless browser check needs " + ", ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run it")
        pytest.skip(reason)
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1000"):  # fmt: skip
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=Service(executable_path=shutil.which("chromedriver")))


def test_report_renders_in_headless_chromium(report, tmp_path):
    driver = _browser_or_skip()
    try:
        driver.get(report.as_uri())
        tops = {}
        for section_id in SECTION_IDS:
            element = driver.find_element("id", section_id)
            assert element.is_displayed() and element.size["height"] > 0, section_id
            tops[section_id] = element.location["y"]
        # the summary renders first: above every other section, and on the first screen
        assert all(tops["summary"] < top for section_id, top in tops.items() if section_id != "summary"), tops
        assert tops["summary"] < driver.execute_script("return window.innerHeight;")
        # every in-page link has its target
        dangling = driver.execute_script(
            "return Array.from(document.querySelectorAll('a[href^=\"#\"]')).map(a => a.getAttribute('href'))"
            ".filter(h => !document.getElementById(decodeURIComponent(h.slice(1))));"
        )
        assert dangling == []
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight]);"
        )
        assert len(images) == 2 * len(TASKS) + 1
        assert all(complete and width > 0 and height > 0 for complete, width, height in images), images
        # nothing fetched from anywhere: the only resource is the page itself
        fetched = driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name).filter(n => !n.startsWith('data:'));"
        )
        assert fetched == []
        # a click on a numeric header sorts its table by that column, a second click the other way
        sortable = driver.find_element("css selector", "#loto table.sortable")
        header = sortable.find_elements("css selector", "thead th.num")[0]
        column = driver.execute_script("return arguments[0].cellIndex;", header)
        read = ("return Array.from(arguments[0].tBodies[0].rows).map(r => parseFloat(r.cells[arguments[1]].textContent))"
                ".filter(v => !Number.isNaN(v));")  # fmt: skip
        header.click()
        ascending = driver.execute_script(read, sortable, column)
        assert len(ascending) > 1 and ascending == sorted(ascending), ascending
        assert header.get_attribute("aria-sort") == "ascending"
        header.click()
        assert driver.execute_script(read, sortable, column) == sorted(ascending, reverse=True)
        # printing opens every collapsed detail, and puts them back after
        closed = driver.execute_script("return document.querySelectorAll('details:not([open])').length;")
        assert closed > 0
        driver.execute_script("window.dispatchEvent(new Event('beforeprint'));")
        assert driver.execute_script("return document.querySelectorAll('details:not([open])').length;") == 0
        driver.execute_script("window.dispatchEvent(new Event('afterprint'));")
        assert driver.execute_script("return document.querySelectorAll('details:not([open])').length;") == closed
        pdf = base64.b64decode(driver.execute_cdp_cmd("Page.printToPDF", {})["data"])
        assert pdf.startswith(b"%PDF")
        (report.parent / "report.pdf").write_bytes(pdf)  # beside the screenshot, for a look at the print layout
        assert driver.save_screenshot(str(tmp_path / "report.png"))
        assert (tmp_path / "report.png").read_bytes().startswith(PNG_SIGNATURE)
        # the first screen, where a reader lands (CI keeps no artifact folder: it goes beside the report,
        # and its path into the log)
        driver.execute_script("window.scrollTo(0, 0);")
        first_screen = report.parent / "report-first-screen.png"
        assert driver.save_screenshot(str(first_screen))
        assert first_screen.read_bytes().startswith(PNG_SIGNATURE)
        print(f"first screen of the report: {first_screen}")
    finally:
        driver.quit()


# --- HPO strategies: replay benchmark and tuning runs ------------------------------------------


@pytest.fixture(scope="module")
def strategies(tmp_path_factory) -> str:
    """The strategies section of a report over results that include the benchmark and tune stages."""
    return _section(_build(tmp_path_factory.mktemp("strategies"), with_strategies=True), "strategies")


def _table_row(html: str, first_cell: str) -> list[str]:
    row = re.search(rf"<tr><td>{re.escape(first_cell)}</td>(.*?)</tr>", html, re.S)
    assert row, first_cell
    return re.findall(r"<td[^>]*>([^<]*)</td>", row.group(1))


def test_strategies_section_sits_between_loto_and_convergence(html):
    contents = re.search(r'<nav id="contents">(.*?)</nav>', html, re.S).group(1)
    assert re.findall(r'href="#(\w+)"', contents) == list(SECTION_IDS)
    assert html.index('<section id="loto">') < html.index('<section id="strategies">') < html.index(
        '<section id="convergence">'
    )


def test_strategies_figures_are_inline_pngs(strategies):
    family = strategies.split('id="strategies-mlp"', 1)[1].split("<h3", 1)[0]
    tuned = strategies.split('id="tune-digits-mlp"', 1)[1]
    # regret against trials and against seconds, best-so-far against trials and seconds: one image each
    for block, count in ((family, 1), (tuned, 1)):
        sources = re.findall(r'<img\s+src="([^"]*)"', block)
        assert len(sources) == count
        for source in sources:
            assert source.startswith("data:image/png;base64,")
            assert base64.b64decode(source.split(",", 1)[1]).startswith(PNG_SIGNATURE)


def test_benchmark_summary_shows_the_numbers(strategies):
    family = strategies.split('id="strategies-mlp"', 1)[1].split("<h3", 1)[0]
    assert "<th>strategy</th>" + "".join(
        f'<th class="num">{name}</th>'
        for name in ("regret@1", "rank@last")
        + tuple(f"{what} ≤{t}" for t in ("0.05", "0.01") for what in ("trials to", "seconds to", "runs reaching"))
    ) in family
    # regret@1, by hand: transfer_bo's per-seed means over tasks are 0.3 and 0.2: mean 0.25, and
    # the 95% half-interval is t(0.975, 1) * sd / sqrt(2) = 12.706 * 0.0707 / 1.414 = 0.635;
    # it reaches regret <= 0.05 at trials 3, 3, 4, 4 (median 3.5) after 6, 6, 120, 120 seconds, and
    # regret <= 0.01 at trials 3, 4, 4, 4 (median 4) after 6, 8, 120, 120 seconds (median 64)
    assert _table_row(family, "transfer_bo") == [
        "0.250 ±0.635", "1.00", "3.5", "63.0", "100.0%", "4", "64.0", "100.0%"
    ]  # fmt: skip
    # random: 0.95 and 0.75 (0.85 ±1.271); only one run of four reaches 0.05, none 0.01
    assert _table_row(family, "random") == [
        "0.850 ±1.271", "2.00", "not reached", "not reached", "25.0%", "not reached", "not reached", "0.0%"
    ]  # fmt: skip
    # the registered order: random before transfer_bo
    assert family.index("<td>random</td>") < family.index("<td>transfer_bo</td>")
    cnn = strategies.split('id="strategies-cnn"', 1)[1].split("<h3", 1)[0]
    assert f'class="note">{SINGLE_TASK_NOTE}' in cnn and "<img" not in cnn


def test_benchmark_shows_how_fine_each_objective_is(strategies):
    family = strategies.split('id="strategies-mlp"', 1)[1].split("<h3", 1)[0]
    assert "<th>task</th>" + "".join(
        f'<th class="num">{name}</th>'
        for name in ("configs", "validation examples", "regret of one example", "configs within ≤0.05",
                     "configs within ≤0.01")
    ) in family  # fmt: skip
    assert _table_row(family, "digits-mlp") == ["64", "270", "0.034", "50.0%", "12.5%"]
    assert _table_row(family, "wine-mlp") == ["64", MISSING, MISSING, "25.0%", "25.0%"]


def test_summary_wrapped_with_the_run_settings_reads_the_same(strategies, tmp_path):
    """summary.json's other layout: families under "families", records under "summary", inf and NaN as null."""
    results = tmp_path / "results"
    _write_results(results)
    _write_strategy_results(results)
    records = [
        {key: None if isinstance(value, float) and not np.isfinite(value) else value for key, value in record.items()}
        for record in summarize(_benchmark_regret_frame()).to_dict("records")
    ]
    write_json(
        results / "benchmark" / "summary.json",
        {"strategies": list(BENCHMARK_REGRET), "trials": 4, "seeds": 2,
         "families": {"mlp": {"tasks": list(TRIAL_SECONDS), "summary": records},
                      "cnn": {"tasks": ["digits-cnn"], "note": SINGLE_TASK_NOTE}}},
    )  # fmt: skip
    params_path = tmp_path / "params.yaml"
    params_path.write_text(yaml.safe_dump(RAW_PARAMS), encoding="utf-8")
    build_report(unchecked_params(RAW_PARAMS), params_path, results, tmp_path / "index.html")
    wrapped = _section((tmp_path / "index.html").read_text(encoding="utf-8"), "strategies")
    for strategy in BENCHMARK_REGRET:
        assert _table_row(wrapped, strategy) == _table_row(strategies, strategy)
    assert f'class="note">{SINGLE_TASK_NOTE}' in wrapped


def test_summary_reads_the_tuned_strategy_from_the_benchmark_table(tmp_path):
    """tune.strategy's trials to each target and its regret@k are the benchmark table's cells, beside random's."""
    raw = {**RAW_PARAMS, "tune": {"strategy": "transfer_bo", "baseline": "random", "trials": 3}}
    html = page(tmp_path, raw, lambda results: (_write_results(results), _write_strategy_results(results)))
    family = _section(html, "strategies").split('id="strategies-mlp"', 1)[1].split("<h3", 1)[0]
    figure, sentence, link = summary_row(html, "Transfer HPO (mlp)")
    transfer, random = _table_row(family, "transfer_bo"), _table_row(family, "random")
    # columns: regret@1, rank@last, then trials / seconds / share reaching for each target
    assert link == "strategies-mlp" and figure == f"{transfer[2]} / {transfer[5]}" == "3.5 / 4"
    assert f"≤0.05 / ≤0.01 in a median {figure} trials against random {random[2]} / {random[5]}," in sentence
    assert f"and {transfer[3]} / {transfer[6]} seconds against random {random[3]} / {random[6]};" in sentence
    assert f"mean regret at trial 1: {transfer[0]}, random {random[0]}" in sentence
    # cnn's family note, as its block says it; and another tune.strategy not benchmarked is a "not run" line
    assert summary_row(html, "Transfer HPO (cnn)")[1] == f"not run: {SINGLE_TASK_NOTE}"
    assert summary_row(_build(tmp_path / "default", with_strategies=True), "Transfer HPO (mlp)")[1] == (
        "not run: weighted_portfolio (tune.strategy) is not in the benchmark results"
    )


# 10 runs per strategy (5 seeds x 2 tasks): enough for a 95% interval of a median, [x_(2), x_(9)] of the
# sorted runs; per run, the trial at which regret first reaches 0.03 and then 0 (None: never), 10 s a trial
INTERVAL_RUNS = {
    "transfer_bo": [(first, first + 1) for first in (1, 2, 2, 3, 3, 3, 4, 4, 5, 6)],
    "random": [(first, first) for first in (2, 3, 4, 5, 5, 6)] + [(None, None)] * 4,
}


def _interval_regret_frame() -> pd.DataFrame:
    tasks = list(TRIAL_SECONDS)
    rows = [
        {
            "family": "mlp", "strategy": strategy, "task": tasks[run % 2], "seed": run // 2, "trial": trial,
            "regret": 0.0 if zero and trial >= zero else 0.03 if near and trial >= near else 0.5,
            "cost": 10.0 * trial, "index": trial - 1, "epochs": None,
        }
        for strategy, runs in INTERVAL_RUNS.items()
        for run, (near, zero) in enumerate(runs)
        for trial in range(1, 9)
    ]  # fmt: skip
    return pd.DataFrame(rows)


@pytest.mark.parametrize("layout", ["records", "wrapped", "older"])
def test_benchmark_medians_show_their_interval_in_the_table_and_the_summary(tmp_path, layout):
    """Median trials and seconds to each target with their 95% interval, "∞)" past the runs that never got
    there, alike whether summary.json writes inf as Infinity or null; a summary.json written before the
    intervals shows the medians alone. The summary's figure and sentence are the table's cells."""
    regret = _interval_regret_frame()
    records = summarize(regret).to_dict("records")
    if layout == "older":
        records = [{key: value for key, value in record.items() if not re.search(r"_to_.*_(low|high)$", key)}
                   for record in records]  # fmt: skip

    def write(results: Path) -> None:
        _write_results(results)
        _write_strategy_results(results)
        write_parquet(results / "benchmark" / "regret.parquet", regret)
        if layout == "wrapped":
            nulls = [{k: None if isinstance(v, float) and not np.isfinite(v) else v for k, v in r.items()}
                     for r in records]  # fmt: skip
            summary = {"strategies": list(INTERVAL_RUNS), "trials": 8, "seeds": 5,
                       "families": {"mlp": {"tasks": list(TRIAL_SECONDS), "summary": nulls}}}  # fmt: skip
        else:
            summary = {"mlp": {"records": records, "note": None, "resolution": RESOLUTION}}
        write_json(results / "benchmark" / "summary.json", summary)

    raw = {**RAW_PARAMS, "tune": {"strategy": "transfer_bo", "baseline": "random", "trials": 3}}
    html = page(tmp_path, raw, write)
    family = _section(html, "strategies").split('id="strategies-mlp"', 1)[1].split("<h3", 1)[0]
    # columns: regret@1, regret@5, rank@last, then trials / seconds / share reaching for each target
    transfer, random = _table_row(family, "transfer_bo")[3:], _table_row(family, "random")[3:]
    if layout == "older":
        assert transfer == ["3", "30.0", "100.0%", "4", "40.0", "100.0%"]
        assert random == ["5.5", "55.0", "60.0%", "5.5", "55.0", "60.0%"]
    else:
        # transfer_bo: trials 1, 2, 2, 3, 3, 3, 4, 4, 5, 6 to 0.05 (median 3, x_(2) = 2, x_(9) = 5), one more to 0.01
        assert transfer == ["3 [2, 5]", "30.0 [20.0, 50.0]", "100.0%", "4 [3, 6]", "40.0 [30.0, 60.0]", "100.0%"]
        # random: 2, 3, 4, 5, 5, 6 and four runs that never get there: x_(9) is one of them
        assert random == ["5.5 [3, ∞)", "55.0 [30.0, ∞)", "60.0%", "5.5 [3, ∞)", "55.0 [30.0, ∞)", "60.0%"]
        assert "95% distribution-free interval" in family
    figure, sentence, _ = summary_row(html, "Transfer HPO (mlp)")
    assert figure == f"{transfer[0]} / {transfer[3]}"
    assert (
        f"in a median {figure} trials against random {random[0]} / {random[3]}, and {transfer[1]} / {transfer[4]} "
        f"seconds against random {random[1]} / {random[4]}; medians over task × seed runs [95% interval]" in sentence
    )


def test_tuning_runs_show_both_strategies(strategies):
    tuned = strategies.split('id="tune-digits-mlp"', 1)[1]
    assert '<th class="num">best val accuracy</th><th class="num">test accuracy of the best</th>' in tuned
    # trials, ok, best val, its test, found at trial, seconds to it, total seconds, then its config's columns
    assert '<th class="num">total seconds</th><th class="num">hidden</th><th class="num">lr</th>' in tuned
    assert _table_row(tuned, "transfer_bo") == ["3", "3", "0.950", "0.940", "2", "5.0", "7.0", "64", "0.02"]
    assert _table_row(tuned, "random") == ["3", "2", "0.850", "0.840", "3", "6.0", "6.0", "64", "0.03"]
    assert tuned.count(f"random: baseline {ESCAPED}") == 1 and HOSTILE not in tuned


def test_missing_benchmark_outputs_become_notes(tmp_path, html):
    strategies = _section(html, "strategies")  # the shared results have no benchmark or tune stage
    assert "results/benchmark/ not found (run the benchmark stage)" in strategies
    assert "results/tune/ not found (run the tune stage)" in strategies
    assert "<img" not in strategies
    results = tmp_path / "results"
    _write_results(results)
    _write_strategy_results(results)
    (results / "benchmark" / "summary.json").unlink()
    (results / "tune" / "digits-mlp.parquet").unlink()
    params_path = tmp_path / "params.yaml"
    params_path.write_text(yaml.safe_dump(RAW_PARAMS), encoding="utf-8")
    build_report(unchecked_params(RAW_PARAMS), params_path, results, tmp_path / "index.html")
    strategies = _section((tmp_path / "index.html").read_text(encoding="utf-8"), "strategies")
    assert "not available: results/benchmark/summary.json not found (run the benchmark stage)" in strategies
    assert "not available: results/tune/ holds no &lt;task&gt;.parquet (run the tune stage)" in strategies
    family = strategies.split('id="strategies-mlp"', 1)[1]
    assert family.count("<img") == 1 and "<table" not in family  # the figure needs only regret.parquet


# --- few-shot meta-learned initialization ------------------------------------------------------

FEWSHOT_RAW = {
    "datasets": ["digits"],
    "split": {"by": "class", "validation": ["4"], "test": ["5", "6", "7", "8", "9"]},
    "filters": 16,
    "methods": ["maml", "protonet", "random_init", "pretrain_head"],
    "meta_train": {"iterations": 40, "validate_every": 20, "inner_lr": 0.1, "inner_steps": 2},
    "evaluate": {"settings": [{"ways": 5, "shots": 1}, {"ways": 5, "shots": 5}], "episodes": 50, "steps": 3,
                 "threshold": 0.6},
    "transfer": {"inits": ["maml", "random_init", "pretrain_head"], "epochs": 4, "threshold": 0.9},
}  # fmt: skip
FEWSHOT_SETTINGS = ("5-way 1-shot", "5-way 5-shot")
# mean query accuracy after steps 0..3 per (method, setting); the interval is 0.03 everywhere
FEWSHOT_ACCURACY = {
    ("maml", "5-way 1-shot"): [0.2, 0.45, 0.55, 0.62], ("maml", "5-way 5-shot"): [0.2, 0.6, 0.7, 0.72],
    ("protonet", "5-way 1-shot"): [0.59, 0.59, 0.59, 0.59], ("protonet", "5-way 5-shot"): [0.8, 0.8, 0.8, 0.8],
    ("random_init", "5-way 1-shot"): [0.2, 0.25, 0.3, 0.32], ("random_init", "5-way 5-shot"): [0.2, 0.3, 0.35, 0.4],
    ("pretrain_head", "5-way 1-shot"): [0.2, 0.4, 0.5, 0.55], ("pretrain_head", "5-way 5-shot"): [0.2, 0.55, 0.66, 0.7],
}  # fmt: skip
FEWSHOT_META_LEARNED = {"maml": True, "protonet": True, "random_init": False, "pretrain_head": False}
FEWSHOT_STEP_SECONDS = 0.004  # mean adaptation seconds per step


def _fewshot_params(fewshot) -> dict:
    raw = copy.deepcopy(RAW_PARAMS)
    raw["fewshot"] = copy.deepcopy(fewshot)
    return raw


def _fewshot_curves() -> pd.DataFrame:
    rows = [
        {"method": method, "setting": setting, "step": step, "accuracy": value, "accuracy_ci": 0.03,
         "macro_f1": value - 0.02, "macro_f1_ci": 0.031, "seconds": FEWSHOT_STEP_SECONDS * step, "episodes": 50}
        for (method, setting), values in FEWSHOT_ACCURACY.items()
        for step, value in enumerate(values)
    ]  # fmt: skip
    return pd.DataFrame(rows)


def _fewshot_table(threshold: float) -> list[dict]:
    rows = []
    for (method, setting), values in FEWSHOT_ACCURACY.items():
        reached = next((step for step, value in enumerate(values) if value >= threshold), None)
        rows.append(
            {
                "method": method, "setting": setting, "episodes": 50, "steps": 3, "accuracy": values[-1],
                "accuracy_ci": 0.03, "macro_f1": values[-1] - 0.02, "macro_f1_ci": 0.031,
                "steps_to_threshold": float("nan") if reached is None else float(reached),
                "seconds_to_threshold": float("nan") if reached is None else FEWSHOT_STEP_SECONDS * reached,
                "meta_learned": FEWSHOT_META_LEARNED[method],
            }
        )  # fmt: skip
    return rows


def _init_config(init: str, method: str, training: str, seconds: float, memory: float) -> dict:
    history = [
        {"iteration": i, "loss": 2.0 - 0.03 * i, "seconds": 0.3 * i,
         **({"val_accuracy": 0.3 + 0.005 * i} if i % 20 == 0 else {})}
        for i in range(1, 41)
    ]  # fmt: skip
    return {
        "format": 1, "init": init, "method": method, "training": training, "in_channels": 1, "image_size": 8,
        "filters": 16, "inner_lr": 0.1, "inner_steps": 2, "steps": 3, "seconds": seconds, "peak_memory_mb": memory,
        "best_iteration": 20, "iterations": 40, "device": "cuda (NVIDIA H200)", "history": history,
    }  # fmt: skip


def _write_fewshot_results(root: Path) -> None:
    """The meta_init and fewshot_eval stages' outputs (docs/ARCHITECTURE.md); pretrain's config is missing."""
    inits = root / "meta_init" / "inits"
    manifest = {i: f"{i}.safetensors" for i in ("maml", "pretrain", "protonet")}
    write_json(inits / "inits.json", {"enabled": True, "device": "cuda (NVIDIA H200)", "inits": manifest,
                                      "order": ["maml", "protonet", "pretrain"]})
    write_json(inits / "maml.json", _init_config("maml", "maml", "episodic", 12.5, 123.4))
    write_json(inits / "protonet.json", _init_config("protonet", "protonet", "episodic", 8.0, 64.0))
    write_parquet(root / "fewshot" / "curves.parquet", _fewshot_curves())
    write_json(
        root / "fewshot" / "summary.json",
        {
            "enabled": True, "device": "cuda (NVIDIA H200)", "threshold": 0.6, "table": _fewshot_table(0.6),
            "meta_training": {
                "maml": {"seconds": 12.5, "peak_memory_mb": 123.4, "best_iteration": 20, "iterations": 40},
                "pretrain": {"seconds": 4.0, "peak_memory_mb": 50.0, "best_iteration": 40, "iterations": 40},
                "protonet": {"seconds": 8.0, "peak_memory_mb": 64.0, "best_iteration": 20, "iterations": 40},
            },
            "transfer": {
                "classes": 5, "train_rows": 540, "steps_per_epoch": 17, "threshold": 0.9,
                "methods": {
                    "maml": {"state": "ok", "init": "maml", "val_accuracy": [0.7, 0.92, 0.95, 0.96],
                             "seconds": [1.0, 1.0, 1.0, 1.0], "test_accuracy": 0.951, "epochs_to_threshold": 2,
                             "steps_to_threshold": 34, "seconds_to_threshold": 2.0},
                    "random_init": {"state": "ok", "init": "random", "val_accuracy": [0.5, 0.7, 0.85, 0.91],
                                    "seconds": [1.0, 1.5, 1.0, 1.0], "test_accuracy": 0.9, "epochs_to_threshold": 4,
                                    "steps_to_threshold": 68, "seconds_to_threshold": 4.5},
                    "pretrain_head": {"state": "failed", "message": f"boom {HOSTILE}"},
                },
            },
        },
    )  # fmt: skip


def _build_with(tmp_path: Path, raw: dict, write=None) -> str:
    """The fewshot section of a report over the shared results plus what ``write`` adds."""

    def write_all(results: Path) -> None:
        _write_results(results)
        if write is not None:
            write(results)

    return _section(page(tmp_path, raw, write_all), "fewshot")


@pytest.fixture(scope="module")
def fewshot(tmp_path_factory) -> str:
    return _build_with(tmp_path_factory.mktemp("fewshot"), _fewshot_params(FEWSHOT_RAW), _write_fewshot_results)


def _captioned(html: str, caption_start: str) -> str:
    """The table whose caption starts with ``caption_start``."""
    assert f"<caption>{caption_start}" in html, caption_start
    return html.split(f"<caption>{caption_start}", 1)[1].split("</table>", 1)[0]


def test_fewshot_section_sits_before_provenance(html):
    assert html.index('<section id="convergence">') < html.index('<section id="fewshot">') < html.index(
        '<section id="provenance">'
    )
    assert "Few-shot meta-learned initialization" in _section(html, "fewshot")


def test_fewshot_figures_are_inline_pngs(fewshot):
    # accuracy against steps (one panel per setting), meta-training curves, transfer curves
    sources = re.findall(r'<img\s+src="([^"]*)"', fewshot)
    assert len(sources) == 3
    for source in sources:
        assert source.startswith("data:image/png;base64,")
        assert base64.b64decode(source.split(",", 1)[1]).startswith(PNG_SIGNATURE)
    comparison = fewshot.split('id="fewshot-comparison"', 1)[1].split("<h3", 1)[0]
    training = fewshot.split('id="fewshot-meta-training"', 1)[1].split("<h3", 1)[0]
    transfer = fewshot.split('id="fewshot-transfer"', 1)[1]
    assert [block.count("<img") for block in (comparison, training, transfer)] == [1, 1, 1]
    assert 'alt="mean query accuracy against adaptation steps' in comparison


def test_fewshot_comparison_table_per_setting(fewshot):
    assert "threshold 0.6 mean query accuracy; evaluated on cuda (NVIDIA H200)." in fewshot
    assert "50 episodes per setting" in fewshot and "5 held out for meta-testing (5, 6, 7, 8, 9)" in fewshot
    one_shot = _captioned(fewshot, "5-way 1-shot")
    assert "<th>method</th><th>kind</th>" + "".join(
        f'<th class="num">{name}</th>'
        for name in ("accuracy ±95% CI", "macro-F1 ±95% CI", "steps k", "steps to ≥0.6", "adaptation ms to ≥0.6",
                     "adaptation ms, k steps", "episodes")
    ) + "<th>best</th>" in one_shot  # fmt: skip
    # maml reaches 0.6 at step 3 (12 ms) and is best; protonet (0.59 ±0.03) overlaps it; the others do not
    assert _table_row(one_shot, "maml") == [
        "meta-learned", "0.620 ±0.030", "0.600 ±0.031", "3", "3", "12.0", "12.0", "50", "best"
    ]  # fmt: skip
    assert _table_row(one_shot, "protonet") == ["meta-learned", "0.590 ±0.030", "0.570 ±0.031", "3", "not reached",
                                                "not reached", "12.0", "50", "CI overlaps best"]  # fmt: skip
    assert _table_row(one_shot, "random_init")[0] == "baseline" and _table_row(one_shot, "random_init")[-1] == ""
    assert _table_row(one_shot, "pretrain_head")[-1] == ""
    five_shot = _captioned(fewshot, "5-way 5-shot")
    protonet = _table_row(five_shot, "protonet")
    assert protonet[3:6] == ["3", "0", "0.0"] and protonet[-1] == "best"  # flat from step 0
    assert _table_row(five_shot, "maml")[-1] == ""
    # the params' method order, settings in the params' order
    positions = [one_shot.index(f"<td>{method}</td>") for method in ("maml", "protonet", "random_init")]
    assert positions == sorted(positions)
    assert fewshot.index("<caption>5-way 1-shot") < fewshot.index("<caption>5-way 5-shot")


def test_summary_reads_the_fewshot_comparison_table(tmp_path):
    """The first setting's best meta-learned method and best baseline, as the comparison table prints them."""
    html = page(tmp_path, _fewshot_params(FEWSHOT_RAW), lambda r: (_write_results(r), _write_fewshot_results(r)))
    one_shot = _captioned(_section(html, "fewshot"), "5-way 1-shot")
    figure, sentence, link = summary_row(html, "Meta-learned initialization")
    assert link == "fewshot-comparison" and figure == _table_row(one_shot, "maml")[1] == "0.620 ±0.030"
    assert sentence.startswith(f"on 5-way 1-shot episodes, maml reaches query accuracy {figure}")
    assert f"the best baseline, pretrain_head, {_table_row(one_shot, 'pretrain_head')[1]}." in sentence


def test_fewshot_meta_training_cost(fewshot):
    cost = _captioned(fewshot, "the cost of each initialization")
    # trained by, training, iterations, selected, last loss, meta-val at selected, seconds, s/iteration, MB, device
    assert _table_row(cost, "maml") == [
        "maml", "episodic", "40", "20", "0.800", "0.400", "12.5", "0.3125", "123.4", "cuda (NVIDIA H200)"
    ]  # fmt: skip
    # pretrain's config is missing: a note, and the summary's figures
    missing = "pretrain: not available: results/meta_init/inits/pretrain.json not found (run the meta_init stage)"
    assert missing in fewshot
    assert _table_row(cost, "pretrain") == [MISSING, MISSING, "40", "40", MISSING, MISSING, "4.0", "0.1", "50.0",
                                            "cuda (NVIDIA H200)"]  # fmt: skip
    assert cost.index("<td>maml</td>") < cost.index("<td>protonet</td>") < cost.index("<td>pretrain</td>")


def test_fewshot_transfer_table(fewshot):
    transfer = _captioned(fewshot, "5 meta-test classes as one classification task")
    assert "540 training rows, 17 steps per epoch; threshold 0.9 val accuracy" in transfer
    # init, state, test, best val, epochs, steps, seconds to threshold, total seconds, steps vs random_init
    assert _table_row(transfer, "maml") == ["maml", "ok", "0.951", "0.960", "2", "34", "2.0", "4.0", "0.50×"]
    assert _table_row(transfer, "random_init") == ["random", "ok", "0.900", "0.910", "4", "68", "4.5", "4.5", "1.00×"]
    assert _table_row(transfer, "pretrain_head") == [MISSING, "failed"] + [MISSING] * 7
    assert f"pretrain_head: failed: boom {ESCAPED}" in fewshot


def test_fewshot_off_in_the_profile_is_said(tmp_path, html):
    off = "The few-shot capability is off in this profile (fewshot: null in the params)"
    assert off in _section(html, "fewshot")  # the shared params have no fewshot section
    section = _build_with(
        tmp_path, _fewshot_params(None),
        lambda root: (write_json(root / "fewshot" / "summary.json", {"enabled": False}),
                      write_json(root / "meta_init" / "inits" / "inits.json", {"enabled": False, "inits": {}})),
    )  # fmt: skip
    assert off in section and "<img" not in section and "<table" not in section and "not available" not in section
    # a summary written with the capability off, read with it on, says so too
    stale = _build_with(tmp_path / "stale", _fewshot_params(FEWSHOT_RAW),
                        lambda root: write_json(root / "fewshot" / "summary.json", {"enabled": False}))  # fmt: skip
    assert off in stale and "<img" not in stale


def test_fewshot_missing_outputs_become_notes(tmp_path):
    section = _build_with(tmp_path, _fewshot_params(FEWSHOT_RAW))
    assert "not available: results/fewshot/ not found (run the fewshot_eval stage)" in section
    assert "not available: results/meta_init/ not found (run the meta_init stage)" in section
    assert "<img" not in section and "<table" not in section

    def without_curves_and_configs(root: Path) -> None:
        _write_fewshot_results(root)
        (root / "fewshot" / "curves.parquet").unlink()
        (root / "meta_init" / "inits" / "maml.json").unlink()
        (root / "meta_init" / "inits" / "protonet.json").unlink()
        (root / "meta_init" / "inits" / "inits.json").write_text("{not json", encoding="utf-8")

    partial = _build_with(tmp_path / "partial", _fewshot_params(FEWSHOT_RAW), without_curves_and_configs)
    assert "not available: results/fewshot/curves.parquet not found (run the fewshot_eval stage)" in partial
    assert "not available: results/meta_init/inits/inits.json could not be read (JSONDecodeError" in partial
    comparison = partial.split('id="fewshot-comparison"', 1)[1].split("<h3", 1)[0]
    assert "<img" not in comparison and _table_row(_captioned(partial, "5-way 1-shot"), "maml")[-1] == "best"
    assert _table_row(_captioned(partial, "5-way 1-shot"), "maml")[6] == MISSING  # ms after k steps: from curves
    # the cost table falls back to the summary's figures; no history: no meta-training figure
    training = partial.split('id="fewshot-meta-training"', 1)[1].split("<h3", 1)[0]
    assert "<img" not in training and _table_row(training, "maml")[6] == "12.5"
    assert partial.split('id="fewshot-transfer"', 1)[1].count("<img") == 1


def test_fewshot_without_transfer_says_so(tmp_path):
    raw = _fewshot_params({**FEWSHOT_RAW, "transfer": None})

    def without_transfer(root: Path) -> None:
        _write_fewshot_results(root)
        summary = json.loads((root / "fewshot" / "summary.json").read_text(encoding="utf-8"))
        write_json(root / "fewshot" / "summary.json", {**summary, "transfer": None})

    section = _build_with(tmp_path, raw, without_transfer)
    transfer = section.split('id="fewshot-transfer"', 1)[1]
    assert "not run: fewshot.transfer is null in the params" in transfer
    assert "<img" not in transfer and "<table" not in transfer


def test_every_registered_strategy_has_its_own_colour_in_the_report():
    import metahpo.hpo.strategies  # noqa: F401  registers them
    from metahpo.hpo.base import STRATEGIES as REGISTERED
    from metahpo.report.sections import strategies as section

    assert set(section.STRATEGIES) == set(REGISTERED.names()), "a new strategy needs its place in the report's order"
    colours = [section._strategy_color(name, list(section.STRATEGIES)) for name in section.STRATEGIES]
    assert len(set(colours)) == len(colours)
