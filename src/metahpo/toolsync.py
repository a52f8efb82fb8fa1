"""Snakemake and DVC share one state: each tool tells the other what it ran.

- After a Snakemake job succeeds, its rule runs ``python -m metahpo.toolsync record STAGE[@KEY]``:
  the stage is committed to dvc.lock (the hashes of its deps, params and outs, as ``dvc repro``
  would have written them), so ``dvc status`` is clean and ``dvc repro`` runs nothing.
- After a stage succeeds under ``dvc repro`` (DVC sets ``DVC_STAGE``), the stage runner drops
  Snakemake's records (params, code, input checksums) of the stage's outputs, so Snakemake judges
  those outputs by their files alone and does not rerun them for a params change DVC already ran.

dvc.lock is one file: parallel Snakemake jobs (``--cores N``, or cluster jobs on a shared file system)
take turns through a lock file beside DVC's own lock, and wait for DVC's lock where a ``dvc``
command holds it. Only params.yaml is tracked by DVC, so a Snakemake run on another params file
(``--config params=...``) records nothing and says so.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, Optional, Sequence

PARAMS_FILE = "params.yaml"
LOCK_FILE = Path(".dvc") / "tmp" / "metahpo-record.lock"
DVC_LOCK_WAIT_SECONDS = 600  # a `dvc` command the user runs meanwhile holds DVC's lock this long at most
SNAKEMAKE_DIR = ".snakemake"


def tracks_params(params_file: str | os.PathLike, root: str | os.PathLike = ".") -> bool:
    """Whether DVC tracks this params file (it reads params.yaml at the project root, nothing else)."""
    return Path(root, params_file).resolve() == Path(root, PARAMS_FILE).resolve()


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # blocks until the job before us has written dvc.lock
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def record_in_dvc(address: str, params_file: str = PARAMS_FILE, root: str | os.PathLike = ".") -> bool:
    """Commit one stage (``name`` or ``name@key``) to dvc.lock; False when DVC does not track the params."""
    if not tracks_params(params_file, root):
        print(f"{address}: not recorded in dvc.lock (DVC tracks {PARAMS_FILE}, this run used {params_file})")
        return False
    from dvc.lock import LockError
    from dvc.repo import Repo

    deadline = time.monotonic() + DVC_LOCK_WAIT_SECONDS
    with _exclusive(Path(root) / LOCK_FILE):
        while True:
            try:
                with Repo(str(root)) as repo:
                    # force: no prompt; relink=False: the outputs Snakemake just checked stay untouched
                    repo.commit(address, force=True, relink=False)
                break
            except LockError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)
    print(f"{address}: recorded in dvc.lock")
    return True


def _snakemake_records(outputs: Sequence[str], root: str | os.PathLike) -> list[str]:
    """The outputs Snakemake holds a record of (``.snakemake/metadata/<base64 of the path>``)."""
    metadata = Path(root) / SNAKEMAKE_DIR / "metadata"
    return [o for o in outputs if (metadata / base64.urlsafe_b64encode(o.encode()).decode()).exists()]


def forget_snakemake_records(outputs: Sequence[str], root: str | os.PathLike = ".") -> None:
    """Drop Snakemake's records of ``outputs`` (nothing to do where Snakemake never made them)."""
    recorded = _snakemake_records(outputs, root)
    if not recorded:
        return
    proc = subprocess.run(["snakemake", "--cleanup-metadata", *recorded], cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:  # Snakemake then reruns the job once more; the results stay right
        print(f"note: could not clear Snakemake's records of {', '.join(recorded)}: {proc.stderr.strip()[-500:]}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m metahpo.toolsync", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    record = sub.add_parser("record", help="commit a stage that Snakemake ran to dvc.lock")
    record.add_argument("address", help="stage or stage@key, as in dvc.yaml")
    record.add_argument("--params", default=PARAMS_FILE, help="the params file the job ran with")
    args = parser.parse_args(argv)
    record_in_dvc(args.address, args.params)
    return 0


if __name__ == "__main__":
    sys.exit(main())
