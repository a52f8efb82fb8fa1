"""The HTML report: sections, self-containment, escaping, missing inputs, atomic write, rendering."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from metahpo.config import Params
from metahpo.errors import MetahpoError
from metahpo.io import write_json, write_parquet
from metahpo.report import SECTIONS, build_report

HOSTILE = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SECTION_IDS = ("tasks", "sweeps", "loto", "convergence", "provenance")
TASKS = {"digits-mlp": "digits", "wine-mlp": "wine", "digits-cnn": "digits"}
TRAINED = ("digits-mlp", "digits-cnn")  # wine-mlp has no train_recommended result
GRID = [(lr, hidden) for lr in (0.001, 0.01, 0.1) for hidden in (64, 128)]
RANDOM = [(0.0031, 96), (0.047, 200)]
EPOCHS = 4
METHODS = ("surrogate", "nearest", "portfolio", "default")
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


def _sweep_frame(task: str, dataset: str, family: str, rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    trials = [("grid", i, hp) for i, hp in enumerate(GRID)] + [("random", i, hp) for i, hp in enumerate(RANDOM)]
    for index, (search, number, (lr, hidden)) in enumerate(trials):
        state = {4: "diverged", 5: "failed"}.get(index, "ok")
        final = float(0.6 + 0.3 * rng.random()) if state == "ok" else float("nan")
        curve = list(np.linspace(0.3, final, EPOCHS)) if state == "ok" else []
        rows.append(
            {
                "task": task, "dataset": dataset, "family": family, "trial_id": f"{search}-{number:04d}",
                "search": search, "seed": 0, "hp.lr": lr, "hp.hidden": hidden,
                "config": json.dumps({"lr": lr, "hidden": hidden}), "state": state,
                "message": f"loss is NaN {HOSTILE}" if state == "diverged" else ("boom" if state == "failed" else ""),
                "epochs_run": len(curve), "curve_train_loss": [1.0 - v for v in curve],
                "curve_val_loss": [1.1 - v for v in curve], "curve_val_metric": curve,
                "curve_seconds": [0.5] * len(curve), "val_metric": final,
                "test_accuracy": final - 0.01, "test_macro_f1": final - 0.02,
                "seconds": 2.0 + index, "device": "cpu",
            }
        )  # fmt: skip
    return pd.DataFrame(rows)


def _loto_frame() -> pd.DataFrame:
    rows = [
        {
            "task": task, "family": task.split("-")[1], "method": method, "k": k,
            "regret": 0.05 / k + 0.01 * position, "val_metric": 0.9 - 0.05 / k, "test_accuracy": 0.88,
            "test_macro_f1": 0.87, "runs": k, "seconds": 2.5 * k, "grid_runs": len(GRID),
            "grid_seconds": 27.0, "grid_best_val_metric": 0.9, "grid_best_test_accuracy": 0.89,
            "configs": json.dumps([{"lr": 0.01, "hidden": 64}] * k), "note": "",
        }
        for task in TASKS
        for position, method in enumerate(METHODS)
        for k in KS
    ]  # fmt: skip
    return pd.DataFrame(rows)


def _write_results(root: Path) -> None:
    """A small results tree in the stage contracts of docs/ARCHITECTURE.md."""
    rng = np.random.default_rng(0)
    for dataset, source in (("digits", "digits"), ("wine", f"wine {HOSTILE}")):
        write_json(
            root / "data" / dataset / "metahpo.json",
            {
                "dataset": dataset, "source": source, "modality": "tabular", "input_column": "x",
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
    write_parquet(root / "meta" / "loto.parquet", _loto_frame())
    write_json(
        root / "meta" / "recommendations.json",
        {task: {"method": "surrogate", "config": {"lr": 0.01, "hidden": 64}, "predicted_score": 0.9} for task in TASKS},
    )
    for task in TRAINED:
        write_json(
            root / "train" / task / "metrics.json",
            {
                "task": task, "family": task.split("-")[1], "config": {"lr": 0.01, "hidden": 64}, "method": "surrogate",
                "state": "ok", "test_accuracy": 0.91234, "test_macro_f1": 0.9, "val_metric": 0.92,
                "best_val_metric": 0.93, "seconds": 12.345, "epochs_run": 20, "epochs_to_convergence": 6,
                "seconds_to_convergence": 3.21, "threshold": 0.95, "device": "cpu",
            },
        )  # fmt: skip


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("run")
    params_path = root / "params.yaml"
    params_path.write_text(yaml.safe_dump(RAW_PARAMS), encoding="utf-8")
    _write_results(root / "results")
    out_path = root / "results" / "report" / "index.html"
    build_report(Params(**RAW_PARAMS), params_path, root / "results", out_path)
    return out_path


@pytest.fixture(scope="module")
def html(report: Path) -> str:
    return report.read_text(encoding="utf-8")


def _section(html: str, section_id: str) -> str:
    match = re.search(rf'<section id="{section_id}">(.*?)</section>', html, re.S)
    assert match, f"section {section_id} missing"
    return match.group(1)


def test_every_section_is_present_and_listed_in_the_contents(html):
    assert [section_id for section_id, _ in SECTIONS] == list(SECTION_IDS)
    for section_id in SECTION_IDS:
        assert f'<section id="{section_id}">' in html
        assert f'href="#{section_id}"' in html


def test_no_external_resources(html):
    assert "<script" not in html.lower()
    assert "<link" not in html.lower()
    for attribute, value in re.findall(r'\b(src|href)\s*=\s*"([^"]*)"', html):
        assert value.startswith(("data:", "#")), f"{attribute}={value[:60]} is an external reference"
    assert "@import" not in html and "url(" not in html


def test_images_are_inline_pngs(html):
    sources = re.findall(r'<img\s+src="([^"]*)"', html)
    # per task: hp figure + learning curves; plus the loto bar chart
    assert len(sources) == 2 * len(TASKS) + 1
    for source in sources:
        assert source.startswith("data:image/png;base64,")
        assert base64.b64decode(source.split(",", 1)[1]).startswith(PNG_SIGNATURE)


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
    top = re.search(r"<caption>top 5 by val metric</caption>.*?<tbody>(.*?)</tbody>", sweeps, re.S).group(1)
    val_metrics = [float(row[4]) for row in re.findall(r"<tr>" + r"<td[^>]*>([^<]*)</td>" * 8, top)]
    assert len(val_metrics) == 5 and val_metrics == sorted(val_metrics, reverse=True)
    loto = _section(html, "loto")
    for method in METHODS:
        assert f"<td>{method}</td>" in loto
    assert "grid (best)" in loto and "mean regret" in loto
    convergence = _section(html, "convergence")
    assert "0.912" in convergence and "12.3" in convergence and "3.2" in convergence  # 3 and 1 decimals
    assert "hidden=64, lr=0.01" in convergence
    provenance = _section(html, "provenance")
    assert "git revision" in provenance and "numpy version" in provenance
    assert "<pre>" in provenance


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
    build_report(Params(**RAW_PARAMS), params_path, results, out_path)
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
    build_report(Params(**RAW_PARAMS), params_path, results, tmp_path / "index.html")
    sweeps = _section((tmp_path / "index.html").read_text(encoding="utf-8"), "sweeps")
    wine = sweeps.split('id="sweep-wine-mlp"', 1)[1].split("<h3", 1)[0]
    assert "not available: no trial finished with state ok" in wine
    assert "<img" not in wine
    assert sweeps.count("<img") == 2 * (len(TASKS) - 1)


def test_missing_results_dir_is_a_metahpo_error(tmp_path):
    with pytest.raises(MetahpoError, match="nowhere"):
        build_report(Params(**RAW_PARAMS), tmp_path / "params.yaml", tmp_path / "nowhere", tmp_path / "index.html")


def test_write_is_atomic_and_leaves_no_temp_files(report):
    assert sorted(p.name for p in report.parent.iterdir()) == ["index.html"]


def test_figures_are_deterministic(tmp_path):
    """A second build over the same results gives the same images."""
    results = tmp_path / "results"
    _write_results(results)
    params_path = tmp_path / "params.yaml"
    params_path.write_text(yaml.safe_dump(RAW_PARAMS), encoding="utf-8")
    first, second = tmp_path / "a.html", tmp_path / "b.html"
    for out in (first, second):
        build_report(Params(**RAW_PARAMS), params_path, results, out)
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
        for section_id in SECTION_IDS:
            element = driver.find_element("id", section_id)
            assert element.is_displayed() and element.size["height"] > 0, section_id
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
        assert driver.save_screenshot(str(tmp_path / "report.png"))
        assert (tmp_path / "report.png").read_bytes().startswith(PNG_SIGNATURE)
    finally:
        driver.quit()
