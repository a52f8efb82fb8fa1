"""environment.yml (conda users) and pyproject.toml name the same dependencies; torch is pinned everywhere."""

from __future__ import annotations

import os
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

TORCH_PIN = "torch==2.13.0"
# folders that hold no install instructions of the project (outputs, caches, environments)
SKIPPED_DIRS = {".git", "results", ".snakemake", ".venv", "build", "__pycache__", ".pytest_cache", "dvclive", ".dvc"}
# a shell line that installs packages: pip / uv pip / conda / mamba ... install
CI_DIRS = (".ci/", ".github/")
INSTALL_LINE = re.compile(r"\b(pip3?|uv|conda|mamba|micromamba)\b.*\binstall\b")


def _normalise(requirement: str) -> str:
    return requirement.replace(" ", "").lower()


def _environment_pip_list(root: Path) -> list[str]:
    env = yaml.safe_load((root / "environment.yml").read_text())
    return next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)


def test_environment_yml_matches_pyproject(repo_root):
    project = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + project["optional-dependencies"]["test"]
    listed = [p for p in _environment_pip_list(repo_root) if not p.startswith("-e")]
    assert sorted(map(_normalise, listed)) == sorted(map(_normalise, declared))


def _names_torch(spec: str) -> bool:
    """Whether a pip or conda spec (torch==2.13.0, "torch>=2", pytorch=2.13, ...) installs torch."""
    name = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", spec.strip().strip("'\""))
    return bool(name) and canonicalize_name(name[0]) in ("torch", "pytorch")  # pytorch: conda's name


def _is_exact_pin(spec: str) -> bool:
    text = re.sub(r"^pytorch(?=[\s=<>!~;\[]|$)", "torch", spec.strip().strip("'\""))  # conda's name for it
    try:
        requirement = Requirement(text)
    except InvalidRequirement:  # e.g. conda's pytorch=2.13 (any 2.13.x)
        return False
    return (
        canonicalize_name(requirement.name) == "torch"
        and not requirement.extras
        and requirement.url is None
        and requirement.marker is None
        and str(requirement.specifier) == "==2.13.0"
    )


def _project_files(root: Path):
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if d not in SKIPPED_DIRS and not d.endswith(".egg-info"))
        yield from (Path(folder) / name for name in sorted(files))


def torch_mentions(root: Path) -> list[tuple[str, str]]:
    """(where, spec) for every place that installs torch: pyproject.toml, environment.yml (conda and
    pip lists), requirements/constraints files, and install commands in Makefiles, .ci/ and shell scripts."""
    found = []
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    groups = {"dependencies": project.get("dependencies", []), **{
        f"optional-dependencies.{name}": deps for name, deps in project.get("optional-dependencies", {}).items()
    }}  # fmt: skip
    for group, deps in groups.items():
        found += [(f"pyproject.toml {group}", d) for d in deps if _names_torch(d)]
    env = yaml.safe_load((root / "environment.yml").read_text())
    for entry in env["dependencies"]:
        specs, where = (entry["pip"], "environment.yml pip") if isinstance(entry, dict) else ([entry], "environment.yml")
        found += [(where, s) for s in specs if isinstance(s, str) and _names_torch(s)]

    for path in _project_files(root):
        relative = path.relative_to(root).as_posix()
        name = path.name.lower()
        if re.fullmatch(r"(requirements|constraints)[\w.\-]*\.(txt|in)", name):
            lines = [line.split(" #")[0] for line in path.read_text().splitlines()]
            found += [(relative, line.strip()) for line in lines if _names_torch(line)]
        elif name in ("makefile", "dockerfile") or name.endswith((".mk", ".sh")) or relative.startswith(CI_DIRS):
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
                if line.lstrip().startswith("#") or not INSTALL_LINE.search(line):
                    continue
                try:
                    words = shlex.split(line, comments=True)
                except ValueError:
                    words = line.split()
                found += [(f"{relative}:{number}", w) for w in words if _names_torch(w)]
    return found


def test_torch_is_pinned_everywhere(repo_root):
    mentions = torch_mentions(repo_root)
    places = {where.split(" ")[0] for where, _ in mentions}
    assert {"pyproject.toml", "environment.yml"} <= places, mentions  # the scan finds the two we know of
    loose = [(where, spec) for where, spec in mentions if not _is_exact_pin(spec)]
    assert not loose, f"torch must be pinned as {TORCH_PIN} everywhere it is installed; not here: {loose}"


@pytest.mark.parametrize(
    "spec, pinned",
    [("torch==2.13.0", True), ("torch == 2.13.0", True), ("pytorch==2.13.0", True), ("torch", False),
     ("torch>=2.13.0", False), ("torch==2.12.0", False), ("torch~=2.13.0", False), ("pytorch=2.13", False),
     ("torch[opt]==2.13.0", False), ("torch==2.13.0; python_version<'3.12'", False)],
)  # fmt: skip
def test_pin_check_accepts_only_the_exact_pin(spec, pinned):
    assert _names_torch(spec)
    assert _is_exact_pin(spec) is pinned


def test_pin_check_finds_unpinned_torch_in_every_kind_of_place(repo_root, tmp_path):
    """A copy of the project's install files, each with torch unpinned in turn: the scan reports each one."""
    for name in ("pyproject.toml", "environment.yml", "Makefile"):
        (tmp_path / name).write_text((repo_root / name).read_text())
    (tmp_path / ".ci").mkdir()
    (tmp_path / ".ci" / "run").write_text((repo_root / ".ci" / "run").read_text())
    assert not [m for m in torch_mentions(tmp_path) if not _is_exact_pin(m[1])]

    pyproject, env = (tmp_path / "pyproject.toml").read_text(), (tmp_path / "environment.yml").read_text()
    (tmp_path / "pyproject.toml").write_text(pyproject.replace('"torch==2.13.0"', '"torch>=2.13"'))
    env = env.replace("- torch==2.13.0", "- torch").replace("  - pip\n", "  - pip\n  - pytorch\n", 1)  # pip and conda
    (tmp_path / "environment.yml").write_text(env)
    (tmp_path / "requirements-gpu.txt").write_text("numpy\ntorch==2.12.0  # cuda build\n")
    gpu_target = "\ngpu:\n\t$(PYTHON) -m pip install 'torch>=2' pytorch-crf\n"
    (tmp_path / "Makefile").write_text((tmp_path / "Makefile").read_text() + gpu_target)
    (tmp_path / ".ci" / "run").write_text((tmp_path / ".ci" / "run").read_text() + "pip install torch\n")
    loose = sorted((where.split(":")[0], spec) for where, spec in torch_mentions(tmp_path) if not _is_exact_pin(spec))
    assert loose == [
        (".ci/run", "torch"),
        ("Makefile", "torch>=2"),  # and not pytorch-crf, on the same line
        ("environment.yml", "pytorch"),
        ("environment.yml pip", "torch"),
        ("pyproject.toml dependencies", "torch>=2.13"),
        ("requirements-gpu.txt", "torch==2.12.0"),
    ]
