"""The provenance section: the params file, git revision, devices, package versions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from metahpo.report import provenance
from metahpo.report.inputs import ResultsTree
from metahpo.report.section import SECTIONS, ReportInputs, Section
from metahpo.report.tables import MISSING, Table

if TYPE_CHECKING:  # annotations only: the library never imports the params module
    from metahpo.config import Params


def build(inputs: ReportInputs) -> dict:
    params_path, results, params = inputs.params_path, inputs.results, inputs.params
    notes = []
    try:
        params_text = params_path.read_text(encoding="utf-8")
    except OSError as err:
        params_text = None
        notes.append(f"not available: params file {params_path} could not be read ({err})")
    facts = [
        ("params file", str(params_path)),
        ("git revision", provenance.git_revision(params_path.resolve().parent)),
        ("report device", provenance.device_name()),
        ("devices used by sweeps and training", ", ".join(_devices_used(params, results)) or MISSING),
        ("generated (UTC)", provenance.generated_at()),
    ] + [(f"{name} version", version) for name, version in provenance.package_versions().items()]
    table = Table.build([("item", False), ("value", False)], [[k, v] for k, v in facts])
    return {"notes": notes, "params_text": params_text, "table": table}


def _devices_used(params: Params, results: ResultsTree) -> list[str]:
    devices: set[str] = set()
    for task in params.tasks:
        sweep, _ = results.sweep(task)
        if sweep is not None and "device" in sweep.columns:
            devices.update(str(d) for d in sweep["device"].dropna().unique())
        metrics, _ = results.train_metrics(task)
        if metrics and metrics.get("device"):
            devices.add(str(metrics["device"]))
    return sorted(devices)


SECTION = SECTIONS.register(Section("provenance", "Provenance", build))
