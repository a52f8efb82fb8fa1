"""Shared fixtures: the repository root, the offline Hub mirror, params loading."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
MIRROR = REPO.parent / "shared" / "hf-mirror"

# pyproject's addopts run the suite on two pytest-xdist workers: one thread each (and in the pipelines they
# start), so two workers share the cores instead of four threads fighting over two.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)

# A module's tests stay on one worker (its module fixtures are built once); these modules' tests are
# independent whole-pipeline runs and spread over both.
SPREAD_MODULES = {"test_pipeline.py", "test_faults.py"}
# The longest work starts first, so neither worker is left with a long test at the end (figures in
# docs/PERFORMANCE.md, "Tests and CI"); the SLURM tests stay together, one at a time on the one-node cluster.
LONGEST_FIRST = ("test_mirror_small_profile_runs_end_to_end_with_snakemake", "test_slurm.py")


@pytest.hookimpl(tryfirst=True)  # before xdist's, which reads the groups
def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.path.name
        item.add_marker(pytest.mark.xdist_group(item.nodeid if module in SPREAD_MODULES else module))
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: min(rank.get(item.originalname, len(rank)), rank.get(item.path.name, len(rank))))


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
