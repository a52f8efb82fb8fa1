"""Report figures as inline PNG data URIs.

Figures are drawn on an Agg canvas directly (no pyplot), so building a report neither changes the
caller's matplotlib backend nor depends on a display, and the same data gives the same bytes. Each
is stored as a palette PNG (at most ``PALETTE_COLORS`` colours, no dithering): a line plot holds a
few dozen distinct colours plus their anti-aliased blends, so the page is about a third the size of
full-colour PNGs and looks the same (the report stays under 1 MB; docs/PERFORMANCE.md).
"""

from __future__ import annotations

import base64
import io
from typing import Optional, Sequence

import numpy as np
from PIL import Image
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter, NullLocator

from metahpo.report.tables import is_missing

DPI = 100
SUBPLOT_SIZE = (2.6, 2.2)  # inches, one hyperparameter panel
SEARCH_MARKERS = {"grid": "o", "random": "^"}
MAX_LABELLED_VALUES = 6  # a hyperparameter with this few distinct values gets a tick at each
PALETTE_COLORS = 256
PLAIN_NUMBERS = FuncFormatter(lambda value, _: f"{value:g}")


def _figure(width: float, height: float, left: float = 0.7, bottom: float = 0.5, right: float = 0.15,
            top: float = 0.15, wspace: float = 0.1) -> Figure:
    """A figure with margins fixed in inches: cheaper than a layout engine, and the same every time."""
    figure = Figure(figsize=(width, height))
    figure.subplots_adjust(
        left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height, wspace=wspace
    )
    return figure


def to_data_uri(figure: Figure) -> str:
    FigureCanvasAgg(figure)
    canvas = io.BytesIO()
    figure.savefig(canvas, format="png", dpi=DPI, facecolor="white")
    palette = Image.open(canvas).convert("RGB").quantize(
        PALETTE_COLORS, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
    )
    buffer = io.BytesIO()
    palette.save(buffer, format="PNG", optimize=True)  # Pillow writes no date or software chunk
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def hyperparameter_figure(panels: Sequence[dict]) -> str:
    """Val metric against each hyperparameter.

    ``panels``: one dict per hyperparameter: ``name``, ``log`` (log x axis) and ``points``:
    ``{search: (xs, ys)}``.
    """
    figure = _figure(0.7 + SUBPLOT_SIZE[0] * len(panels), SUBPLOT_SIZE[1] + 0.3, top=0.45)
    axes = figure.subplots(1, len(panels), squeeze=False, sharey=True)[0]
    for ax, panel in zip(axes, panels):
        for search, (xs, ys) in sorted(panel["points"].items()):
            ax.scatter(xs, ys, s=16, alpha=0.7, marker=SEARCH_MARKERS.get(search, "s"), label=search)
        if panel["log"]:
            ax.set_xscale("log")
        values = sorted({x for xs, _ in panel["points"].values() for x in xs})
        if 0 < len(values) <= MAX_LABELLED_VALUES:
            ax.xaxis.set_minor_locator(NullLocator())
            ax.set_xticks(values, [f"{value:g}" for value in values])
        ax.margins(x=0.15)  # keep edge points off the frame
        ax.set_xlabel(panel["name"])
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("val metric")
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:  # above the panels, where it hides no point
        figure.legend(handles, labels, loc="upper center", ncols=len(labels), fontsize="small", frameon=False)
    return to_data_uri(figure)


def learning_curves_figure(curves: Sequence[tuple[str, Sequence[float]]], ylabel: str = "val metric",
                           colors: Sequence[str] | None = None, threshold: float | None = None) -> str:  # fmt: skip
    """Val metric per epoch; ``curves``: (label, values) pairs; ``colors``: one per curve (None: the
    default cycle); ``threshold``: a dotted horizontal line, the target value."""
    figure = _figure(5.2, 2.8)
    ax = figure.subplots()
    for index, (label, values) in enumerate(curves):
        color = {"color": colors[index]} if colors is not None else {}
        ax.plot(range(1, len(values) + 1), values, marker="o", markersize=3, label=label, **color)
    if threshold is not None:
        ax.axhline(threshold, color="0.3", linestyle=":", linewidth=1, label=f"threshold {threshold:g}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    return to_data_uri(figure)


DODGE = 1.06  # x factor between neighbouring methods on a log axis


def tradeoff_figure(series: Sequence[dict], cost_label: str) -> str:
    """Mean regret (95% interval) against configs tried (left) and against what they cost (right), log x.

    ``series``: one dict per method: ``label``, ``color`` and equal-length ``trials``, ``cost``,
    ``cost_low``, ``cost_high``, ``mean``, ``low``, ``high`` (NaN bounds: no bar there); one point per
    budget, joined by a line. ``cost_label``: the right panel's x label.
    """
    figure = _figure(0.85 + 2 * 3.0 + 1.6, 3.0, left=0.85, right=1.6, wspace=0.08)
    by_trials, by_cost = figure.subplots(1, 2, sharey=True)
    for index, entry in enumerate(series):
        mean, low, high = (np.asarray(entry[key], dtype=float) for key in ("mean", "low", "high"))
        y_err = np.vstack([np.nan_to_num(mean - low), np.nan_to_num(high - mean)])
        dodge = DODGE ** (index - (len(series) - 1) / 2)  # methods at the same k side by side, not on top
        for ax, x_key in ((by_trials, "trials"), (by_cost, "cost")):
            x = np.asarray(entry[x_key], dtype=float) * (dodge if x_key == "trials" else 1.0)
            x_err = None
            if x_key == "cost":
                x_low, x_high = (np.asarray(entry[key], dtype=float) for key in ("cost_low", "cost_high"))
                x_err = np.vstack([np.nan_to_num(x - x_low), np.nan_to_num(x_high - x)])
            ax.errorbar(x, mean, yerr=y_err, xerr=x_err, color=entry["color"], label=entry["label"], marker="o",
                        markersize=4, capsize=2, linewidth=1.2, elinewidth=0.8)  # fmt: skip
    for ax in (by_trials, by_cost):
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(PLAIN_NUMBERS)
        ax.grid(True, which="both", alpha=0.25)
    ks = sorted({int(k) for entry in series for k in entry["trials"]})
    by_trials.xaxis.set_minor_locator(NullLocator())
    by_trials.set_xticks(ks, [str(k) for k in ks])
    by_trials.set_xlim(min(ks, default=1) / 1.3, max(ks, default=1) * 1.3)
    by_trials.set_xlabel("configs tried (k)")
    by_cost.set_xlabel(cost_label)
    by_trials.set_ylim(bottom=min(by_trials.get_ylim()[0], -0.02))  # 0 in view: the grid's own regret
    by_trials.set_ylabel("mean normalised regret")
    handles, labels = by_trials.get_legend_handles_labels()
    if handles:
        by_cost.legend(handles, labels, fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    return to_data_uri(figure)


REGRET_LIMITS = (-0.05, 1.05)  # normalised regret lies in [0, 1]; wide intervals (few seeds) are cut here


def regret_curves_figure(panels: Sequence[dict]) -> str:
    """Mean regret per strategy with its 95% interval as a band, panels side by side sharing the y axis.

    ``panels``: one dict per panel: ``xlabel``, ``log_x`` and ``curves``, one dict per strategy:
    ``label``, ``color``, ``x``, ``mean``, ``low``, ``high`` (equal-length sequences; NaN bounds, e.g.
    from a single seed, draw no band there). One legend, right of the last panel.
    """
    figure = _figure(0.7 + 3.4 * len(panels) + 1.9, 3.2, right=1.9, wspace=0.08)
    axes = figure.subplots(1, len(panels), squeeze=False, sharey=True)[0]
    for ax, panel in zip(axes, panels):
        for curve in panel["curves"]:
            x, low, high = (np.asarray(curve[key], dtype=float) for key in ("x", "low", "high"))
            ax.plot(x, curve["mean"], color=curve["color"], label=curve["label"], linewidth=1.5)
            banded = np.isfinite(low) & np.isfinite(high)
            if banded.any():
                ax.fill_between(x, low, high, where=banded, color=curve["color"], alpha=0.15, linewidth=0)
        if panel["log_x"]:
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(PLAIN_NUMBERS)  # 1, 10, 100 rather than 10^0, 10^1, 10^2
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(panel["xlabel"])
        ax.grid(True, alpha=0.3)
    axes[0].set_ylim(*REGRET_LIMITS)
    axes[0].set_ylabel("mean normalised regret")
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        axes[-1].legend(handles, labels, fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    return to_data_uri(figure)


def best_so_far_figure(runs: Sequence[dict], ylabel: str) -> str:
    """Best-so-far score against trials (left) and cumulative seconds (right), one step line per run.

    ``runs``: one dict per run: ``label``, ``color``, ``trials``, ``seconds``, ``best`` (equal lengths).
    """
    figure = _figure(0.7 + 2 * 3.0, 3.0, top=0.45, wspace=0.08)
    by_trial, by_seconds = figure.subplots(1, 2, sharey=True)
    for run in runs:
        for ax, x in ((by_trial, run["trials"]), (by_seconds, run["seconds"])):
            ax.plot(x, run["best"], drawstyle="steps-post", marker="o", markersize=3, color=run["color"],
                    label=run["label"])  # fmt: skip
    by_trial.xaxis.set_major_locator(MaxNLocator(integer=True))
    by_trial.set_xlabel("trial")
    by_seconds.set_xlabel("cumulative seconds")
    by_trial.set_ylabel(ylabel)
    for ax in (by_trial, by_seconds):
        ax.grid(True, alpha=0.3)
    handles, labels = by_trial.get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, loc="upper center", ncols=len(labels), fontsize="small", frameon=False)
    return to_data_uri(figure)


ACCURACY_LIMITS = (-0.02, 1.02)  # accuracies and F1 lie in [0, 1]; wide intervals (few episodes) are cut here


def step_curves_figure(panels: Sequence[dict], ylabel: str, threshold: float | None = None) -> str:
    """A score against adaptation steps, one panel per setting, one line per method with its 95% band.

    ``panels``: one dict per panel: ``title`` and ``curves``, one dict per method: ``label``,
    ``color``, ``dashed`` (a baseline), ``x`` (steps), ``mean``, ``low``, ``high`` (equal lengths;
    NaN bounds draw no band there). ``threshold``: a dotted horizontal line, the target score.
    """
    width = 0.7 + 3.0 * len(panels) + 2.4  # the legend sits right of the panels
    figure = _figure(width, 3.2, right=2.4, top=0.35, wspace=0.08)
    axes = figure.subplots(1, len(panels), squeeze=False, sharey=True)[0]
    for ax, panel in zip(axes, panels):
        for curve in panel["curves"]:
            x, low, high = (np.asarray(curve[key], dtype=float) for key in ("x", "low", "high"))
            ax.plot(x, curve["mean"], color=curve["color"], label=curve["label"], linewidth=1.5,
                    linestyle="--" if curve.get("dashed") else "-", marker="o", markersize=2.5)  # fmt: skip
            banded = np.isfinite(low) & np.isfinite(high)
            if banded.any():
                ax.fill_between(x, low, high, where=banded, color=curve["color"], alpha=0.12, linewidth=0)
        if threshold is not None:
            ax.axhline(threshold, color="0.3", linestyle=":", linewidth=1, label=f"threshold {threshold:g}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylim(*ACCURACY_LIMITS)
        ax.set_title(panel["title"], fontsize="medium")
        ax.set_xlabel("adaptation steps")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel(ylabel)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        axes[-1].legend(handles, labels, fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    return to_data_uri(figure)


def meta_training_figure(curves: Sequence[dict]) -> str:
    """Training loss (left) and meta-validation accuracy (right, if any init has one) against iterations.

    ``curves``: one dict per initialization: ``label``, ``color``, ``iterations`` and ``loss``
    (equal lengths), ``val_iterations`` and ``val_accuracy`` (equal lengths, may be empty) and
    ``best`` (the selected iteration, marked on the validation curve; None: not marked).
    """
    validated = any(len(curve["val_accuracy"]) for curve in curves)
    panels = 2 if validated else 1
    figure = _figure(0.7 + 3.4 * panels + 2.2 + (0.5 if validated else 0), 3.0, right=2.2, top=0.15,
                     wspace=0.3 if validated else 0.1)  # fmt: skip
    axes = figure.subplots(1, panels, squeeze=False, sharex=True)[0]
    loss_ax = axes[0]
    for curve in curves:
        loss_ax.plot(curve["iterations"], curve["loss"], color=curve["color"], label=curve["label"], linewidth=1)
    loss_ax.set_ylabel("training loss")
    if validated:
        val_ax = axes[1]
        for curve in curves:
            if not len(curve["val_accuracy"]):
                continue
            val_ax.plot(curve["val_iterations"], curve["val_accuracy"], color=curve["color"], marker="o", markersize=3,
                        linewidth=1.2, label=curve["label"])  # fmt: skip
            if curve.get("best") in list(curve["val_iterations"]):
                at = list(curve["val_iterations"]).index(curve["best"])
                val_ax.plot([curve["best"]], [curve["val_accuracy"][at]], color=curve["color"], marker="*",
                            markersize=10, linestyle="none")  # fmt: skip
        val_ax.set_ylim(*ACCURACY_LIMITS)
        val_ax.set_ylabel("meta-validation accuracy")
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("iteration")
        ax.grid(True, alpha=0.3)
    handles, labels = loss_ax.get_legend_handles_labels()
    if handles:
        axes[-1].legend(handles, labels, fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    return to_data_uri(figure)


SMALL_MULTIPLES_COLUMNS = 4  # panels per row of a grid of small multiples
CHOSEN_LABEL = "chosen (most redraws)"


def score_truth_figure(panels: Sequence[dict], xlabel: str, ylabel: str, diagonal: bool = True) -> str:
    """Each member's score against its ground truth, one panel per target, in rows of up to four.

    ``panels``: one dict per panel: ``title`` and ``points``, one dict per member: ``label``,
    ``color``, ``x``, ``y``, ``low`` and ``high`` (an interval on x; NaN: none) and ``chosen`` (ringed).
    ``diagonal``: x is a predicted metric: the y = x line, on the same shared limits for both axes.
    """
    columns = min(len(panels), SMALL_MULTIPLES_COLUMNS)
    rows = -(-len(panels) // columns)
    width, height = 0.7 + 2.5 * columns + 2.0, 0.65 + 2.5 * rows
    figure = _figure(width, height, bottom=0.65, right=2.0, top=0.3, wspace=0.08 if diagonal else 0.2)
    figure.subplots_adjust(hspace=0.3 if diagonal else 0.45)
    axes = figure.subplots(rows, columns, squeeze=False, sharex=diagonal, sharey=True)
    handles: dict[str, object] = {}
    values = []
    for ax, panel in zip(axes.flat, panels):
        for point in panel["points"]:
            x, y, low, high = (float(point[key]) for key in ("x", "y", "low", "high"))
            if np.isfinite(low) and np.isfinite(high):
                handle = ax.errorbar([x], [y], xerr=[[max(x - low, 0.0)], [max(high - x, 0.0)]], fmt="o",
                                     color=point["color"], markersize=5, capsize=2, linewidth=1)  # fmt: skip
                values += [low, high]
            else:
                handle = ax.scatter([x], [y], s=30, color=point["color"], zorder=3)
            handles.setdefault(point["label"], handle)
            values += [x, y]
            if point.get("chosen"):
                ring = ax.scatter([x], [y], s=160, facecolors="none", edgecolors="black", linewidths=1.2, zorder=4)
                handles.setdefault(CHOSEN_LABEL, ring)
        ax.set_title(panel["title"], fontsize="medium")
        ax.grid(True, alpha=0.3)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    finite = [value for value in values if np.isfinite(value)]
    if diagonal and finite:
        low, high = min(finite), max(finite)
        pad = 0.05 * (high - low) if high > low else 0.05
        for ax in axes.flat[: len(panels)]:
            ax.axline((low, low), slope=1, color="0.4", linestyle=":", linewidth=1)
        axes[0, 0].set_xlim(low - pad, high + pad)
        axes[0, 0].set_ylim(low - pad, high + pad)
    for index, ax in enumerate(axes.flat[: len(panels)]):
        if index + columns >= len(panels):  # the lowest panel of its column: its ticks show
            ax.xaxis.set_tick_params(labelbottom=True)
        if index % columns == 0:
            ax.set_ylabel(ylabel)
    centre = (0.7 + (width - 2.0)) / 2 / width  # under the panels, not the legend
    figure.supxlabel(xlabel, x=centre, y=0.1 / height, va="bottom", fontsize="medium")  # one label for every column
    if handles:
        labels = sorted(handles, key=lambda label: label == CHOSEN_LABEL)  # the ring's entry last
        axes[0, -1].legend([handles[label] for label in labels], labels, fontsize="small", loc="upper left",
                           bbox_to_anchor=(1.02, 1.0), frameon=False)  # fmt: skip
    return to_data_uri(figure)


def lines_figure(curves: Sequence[dict], xlabel: str, ylabel: str, log_y: bool = False,
                 threshold: float | None = None) -> str:  # fmt: skip
    """One line per curve on one axes, the legend right of it.

    ``curves``: one dict per line: ``label``, ``color``, ``x`` and ``y`` (equal lengths; NaN: a gap)
    and optionally ``style``, Line2D keywords over the defaults (e.g. ``{"linestyle": "none",
    "marker": "*"}`` for marked points). ``log_y``: a log y axis, where values <= 0 are left out
    (a rate annealed to 0). ``threshold``: a dotted horizontal line, the target value.
    """
    figure = _figure(6.2, 3.0, right=1.9)
    ax = figure.subplots()
    positive = False
    for curve in curves:
        x, y = np.asarray(curve["x"], dtype=float), np.asarray(curve["y"], dtype=float)
        if log_y:
            y = np.where(y > 0, y, np.nan)
            positive = positive or bool(np.isfinite(y).any())
        style = {"linewidth": 1.3, "marker": "o", "markersize": 2.5, **curve.get("style", {})}
        ax.plot(x, y, color=curve["color"], label=curve["label"], **style)
    if threshold is not None:
        ax.axhline(threshold, color="0.3", linestyle=":", linewidth=1, label=f"threshold {threshold:g}")
    if positive:  # a log axis with nothing on it only warns
        ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    return to_data_uri(figure)


ROW_HEIGHT = 0.3  # inches per row of a dot plot
LABEL_CHAR_WIDTH = 0.075  # inches per character of a row label (default font size)


def interval_dot_figure(panels: Sequence[dict], share_x: bool = False) -> Optional[str]:
    """Dots with 95% interval bars (a forest plot), panels side by side sharing the row labels (y).

    ``panels``: one dict per panel: ``xlabel``, ``log_x``, optional ``title`` and ``reference`` (an x
    drawn as a dotted vertical line, e.g. 1 for a ratio) and ``rows``, one dict per row: ``label``,
    ``value``, ``low``, ``high`` and optional ``color`` (C0). Rows are matched by label across panels,
    top to bottom in their first appearance; a NaN value draws no dot, NaN bounds no bar.
    ``share_x``: the panels' x axes are the same (one quantity, several groups; the first panel's ``log_x``
    and ``reference`` set the limits). None when no row has a value: nothing to draw.
    """
    if not any(not is_missing(row["value"]) for panel in panels for row in panel["rows"]):
        return None
    labels = list(dict.fromkeys(row["label"] for panel in panels for row in panel["rows"]))
    titled = any(panel.get("title") for panel in panels)
    left = 0.3 + LABEL_CHAR_WIDTH * max((len(str(label)) for label in labels), default=1)
    top, bottom = (0.35 if titled else 0.15), 0.6
    width = left + 2.6 * len(panels) + 0.2 + (0.15 * (len(panels) - 1) if not share_x else 0.0)
    figure = _figure(width, top + bottom + ROW_HEIGHT * max(len(labels), 1), left=left, bottom=bottom, right=0.2,
                     top=top, wspace=0.08 if share_x else 0.15)  # fmt: skip
    axes = figure.subplots(1, len(panels), squeeze=False, sharey=True, sharex=share_x)[0]
    position = {label: len(labels) - 1 - index for index, label in enumerate(labels)}  # the first row on top
    for ax, panel in zip(axes, panels):
        for row in panel["rows"]:
            y, color = position[row["label"]], row.get("color", "C0")
            value, low, high = (np.nan if row[key] is None else float(row[key]) for key in ("value", "low", "high"))
            if np.isfinite(low) and np.isfinite(high):
                ax.plot([low, high], [y, y], color=color, linewidth=1.4, solid_capstyle="butt")
                ax.plot([low, high], [y, y], color=color, marker="|", markersize=6, linestyle="none")
            if np.isfinite(value):
                ax.plot([value], [y], color=color, marker="o", markersize=5, linestyle="none")
        if panel.get("reference") is not None:
            ax.axvline(panel["reference"], color="0.3", linestyle=":", linewidth=1)
        if panel["log_x"]:
            ax.set_xscale("log")
        if panel.get("title"):
            ax.set_title(panel["title"], fontsize="medium")
        ax.set_xlabel(panel["xlabel"])
        ax.grid(True, axis="x", alpha=0.3)
    if share_x:
        _interval_limits(axes[0], [row for panel in panels for row in panel["rows"]], panels[0])
    else:
        for ax, panel in zip(axes, panels):
            _interval_limits(ax, panel["rows"], panel)
    axes[0].set_yticks(list(position.values()), [str(label) for label in position])
    axes[0].set_ylim(-0.6, len(labels) - 0.4)
    return to_data_uri(figure)


def _interval_limits(ax, rows: Sequence[dict], panel: dict) -> None:
    """x limits around every dot, bound and the reference line; on a log axis, ticks at 1-2-5 (finer
    within a decade) written as plain numbers."""
    ends = [float(row[key]) for row in rows for key in ("value", "low", "high") if row[key] is not None]
    if panel.get("reference") is not None:
        ends.append(float(panel["reference"]))
    log = bool(panel["log_x"])
    ends = np.asarray([end for end in ends if np.isfinite(end) and (end > 0 or not log)])
    if not len(ends):
        return
    low, high = (np.log10(ends.min()), np.log10(ends.max())) if log else (ends.min(), ends.max())
    pad = 0.06 * (high - low) if high > low else (0.05 if log else max(abs(high) * 0.1, 0.05))
    low, high = low - pad, high + pad
    if not log:
        ax.set_xlim(low, high)
        return
    ax.set_xlim(10**low, 10**high)
    subs = (1.0, 2.0, 5.0) if high - low > 1 else (1.0, 1.5, 2.0, 3.0, 5.0, 7.0)
    ax.xaxis.set_major_locator(LogLocator(subs=subs))
    ax.xaxis.set_major_formatter(PLAIN_NUMBERS)
    ax.xaxis.set_minor_formatter(NullFormatter())
