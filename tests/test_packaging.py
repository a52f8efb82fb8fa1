"""environment.yml (conda users) and pyproject.toml name the same dependencies."""

from __future__ import annotations

import tomllib

import yaml


def _normalise(requirement: str) -> str:
    return requirement.replace(" ", "").lower()


def test_environment_yml_matches_pyproject(repo_root):
    project = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + project["optional-dependencies"]["test"]
    env = yaml.safe_load((repo_root / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    listed = [p for p in pip_section if not p.startswith("-e")]
    assert sorted(map(_normalise, listed)) == sorted(map(_normalise, declared))


def test_torch_is_pinned_everywhere(repo_root):
    project = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]
    assert "torch==2.13.0" in project["dependencies"]
