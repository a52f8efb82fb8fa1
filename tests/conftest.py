"""Shared fixtures: the repository root, the offline Hub mirror, params loading."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
MIRROR = REPO.parent / "shared" / "hf-mirror"


@pytest.fixture
def repo_root() -> Path:
    return REPO


@pytest.fixture
def default_params_raw() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


@pytest.fixture
def mirror() -> Path:
    if not MIRROR.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"offline mirror {MIRROR} missing in CI")
        pytest.skip(f"offline mirror {MIRROR} not present")
    return MIRROR
