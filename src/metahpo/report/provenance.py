"""Where a report came from: params, code revision, package versions, hardware, time."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path

UNKNOWN = "unknown"
PACKAGES = ("torch", "datasets", "transformers", "scikit-learn", "pandas", "numpy", "metahpo")


def git_revision(directory: Path) -> str:
    """``<sha>`` or ``<sha> (dirty)`` for the checkout holding ``directory``; "unknown" outside one."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(directory), *args], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()

    try:
        sha = git("rev-parse", "HEAD")
        # untracked files (results/, caches) do not make the code dirty; changed tracked files do
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN
    return f"{sha} (dirty)" if dirty else sha


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def device_name() -> str:
    """The CUDA device torch sees, else the CPU model."""
    try:
        import torch

        if torch.cuda.is_available():
            return f"CUDA: {torch.cuda.get_device_name(0)}"
    except Exception:  # a broken torch install must not stop the report
        pass
    return f"CPU: {_cpu_model()}"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or UNKNOWN


def generated_at() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
