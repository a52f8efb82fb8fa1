"""The tasks section: each task's dataset, family and splits, and the datasets' meta-features."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from metahpo.report.common import load_each
from metahpo.report.inputs import ResultsTree
from metahpo.report.section import SECTIONS, ReportInputs, Section
from metahpo.report.tables import MISSING, Table, fmt_int, fmt_number, fmt_seconds

if TYPE_CHECKING:  # annotations only: the library never imports the params module
    from metahpo.config import Params


METAFEATURE_GROUPS = ("simple", "statistical", "landmarkers")
DEFAULT_TASK_TYPE = "classification"  # metahpo.json files written before task types had none


def pretrained_flags(params: Params) -> dict[str, Optional[bool]]:
    """family -> starts from pretrained weights; from the family registry, else the family's options."""
    try:
        from metahpo.models import FAMILIES
    except Exception:  # the models need torch; the report must still build without it
        FAMILIES = None
    flags: dict[str, Optional[bool]] = {}
    for family, spec in params.families.items():
        registered = params.registered_family(family)
        if FAMILIES is not None and registered in FAMILIES:
            flags[family] = bool(FAMILIES.get(registered).pretrained)
        else:
            option = spec.options.get("pretrained")
            flags[family] = option if isinstance(option, bool) else None
    return flags


def build(inputs: ReportInputs) -> dict:
    params, results = inputs.params, inputs.results
    infos, notes = load_each(
        _datasets_in_use(params), results.dataset_info, results.missing_stage("download")
    )
    flags = pretrained_flags(params)
    init_names = {True: "pretrained", False: "random init", None: "unknown"}
    rows = []
    for task, spec in params.tasks.items():
        info = infos.get(spec.dataset, {})
        sizes = info.get("split_sizes", {})
        rows.append(
            [
                task,
                spec.dataset,
                params.datasets[spec.dataset].source if spec.dataset in params.datasets else MISSING,
                spec.family,
                init_names[flags.get(spec.family)],
                str(info.get("task_type", DEFAULT_TASK_TYPE)) if info else MISSING,
                str(info.get("modality", MISSING)),
                fmt_int(info.get("num_classes")),
                *(fmt_int(sizes.get(split)) for split in ("train", "validation", "test")),
                "x".join(str(d) for d in info["input_shape"]) if info.get("input_shape") else MISSING,
            ]
        )
    columns = [
        ("task", False), ("dataset", False), ("source", False), ("family", False), ("weights", False),
        ("task type", False), ("modality", False), ("classes", True), ("train", True), ("validation", True),
        ("test", True), ("input shape", False),
    ]  # fmt: skip
    return {"notes": notes, "tasks": Table.build(columns, rows), **_metafeature_tables(params, results)}


def _datasets_in_use(params: Params) -> list[str]:
    return list(dict.fromkeys(spec.dataset for spec in params.tasks.values()))


def _metafeature_tables(params: Params, results: ResultsTree) -> dict:
    loaded, notes = load_each(
        _datasets_in_use(params), results.metafeatures, results.missing_stage("metafeatures")
    )
    if not loaded:
        return {"metafeature_notes": notes, "metafeature_groups": [], "metafeature_seconds": None}
    group_tables = []
    for group in METAFEATURE_GROUPS:
        names = list(dict.fromkeys(n for mf in loaded.values() for n in mf.get("groups", {}).get(group, [])))
        if not names:
            continue
        rows = [[dataset] + [fmt_number(mf["features"].get(name)) for name in names] for dataset, mf in loaded.items()]
        group_tables.append(Table.build([("dataset", False)] + [(n, True) for n in names], rows, caption=group))
    timed = list(dict.fromkeys(key for mf in loaded.values() for key in mf.get("seconds", {})))
    seconds_rows = [
        [dataset] + [fmt_seconds(mf["seconds"].get(key)) for key in timed] + [fmt_seconds(sum(mf["seconds"].values()))]
        for dataset, mf in loaded.items()
    ]
    seconds_table = Table.build(
        [("dataset", False)] + [(key, True) for key in timed] + [("total", True)],
        seconds_rows,
        caption="seconds to compute each group",
    )
    return {"metafeature_notes": notes, "metafeature_groups": group_tables, "metafeature_seconds": seconds_table}


SECTION = SECTIONS.register(Section("tasks", "Tasks and meta-features", build))
