"""A stage's code dependencies: the import closure of its entry modules inside the package.

Both tools take a stage's code deps from here (dvc.yaml lists them, the Snakemake rules get them as
inputs), so an edit reruns exactly the stages that import the edited module, under either tool.

The closure follows every static import of a ``metahpo`` module, at module level and inside
functions (a lazy import runs as soon as the function does), plus the ``__init__`` of every package
on the way (Python runs them on import). A package brings its data files (the report's templates):
every non-Python file under a package folder belongs to the nearest package above it.

Two exceptions, by design:
- the imports inside ``metahpo.config``'s functions are not followed. They consult the registries to
  decide whether a params file is valid, which decides whether a stage runs at all but never what
  it writes; following them would make every stage depend on every model family, so that an edit to
  one family would re-download every dataset.
- the workflow's own modules (the stage table, this module, the tool sync) are not code deps: what
  they say about a stage (its command, paths, params) is written into dvc.yaml and the Snakemake
  rules, which both tools already compare, so adding a stage does not rerun every other one.
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Optional

PACKAGE = "metahpo"
VALIDATION_MODULES = frozenset({"metahpo.config"})  # their function-level imports are not followed
WORKFLOW_MODULES = frozenset({"metahpo.pipeline", "metahpo.codedeps", "metahpo.toolsync"})  # never code deps
SKIPPED_PARTS = ("__pycache__",)
SKIPPED_SUFFIXES = (".pyc", ".pyo")


def package_root() -> Path:
    """The folder of the ``metahpo`` package (src/metahpo in a checkout)."""
    return Path(__file__).resolve().parent


def module_file(module: str, root: Optional[Path] = None) -> Optional[Path]:
    """The source file of a ``metahpo`` module (a package's ``__init__.py``), or None if there is none."""
    root = root or package_root()
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = root.joinpath(*parts[1:])
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _absolute(module: str, path: Path, level: int, name: Optional[str]) -> str:
    """The absolute name of a relative import (``from . import x`` inside ``module``)."""
    if level == 0:
        return name or ""
    package = module if _is_package(path) else module.rpartition(".")[0]
    for _ in range(level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{name}" if name else package


def _imported_names(module: str, path: Path) -> list[str]:
    """Every module a source file may import: ``import a.b``, ``from a import b`` (b a module or a name)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    follow_functions = module not in VALIDATION_MODULES
    names: list[str] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if inside and not follow_functions:
                continue
            if isinstance(child, ast.Import):
                names.extend(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = _absolute(module, path, child.level, child.module)
                names.append(base)
                names.extend(f"{base}.{alias.name}" for alias in child.names if alias.name != "*")
            visit(child, inside)

    visit(tree, False)
    return [name for name in names if name == PACKAGE or name.startswith(PACKAGE + ".")]


@lru_cache(maxsize=None)
def _closure(entries: tuple[str, ...], root: Path) -> tuple[str, ...]:
    seen: dict[str, Path] = {}
    todo = list(entries)
    while todo:
        name = todo.pop()
        if name in seen or name in WORKFLOW_MODULES:
            continue
        path = module_file(name, root)
        if path is None:
            continue  # ``from pkg import function``: the name is not a module
        seen[name] = path
        todo.extend(_parents(name))
        todo.extend(_imported_names(name, path))
    return tuple(sorted(seen))


def import_closure(entries: Iterable[str], root: Optional[Path] = None) -> list[str]:
    """The ``metahpo`` modules that importing ``entries`` may run, sorted by name."""
    root = (root or package_root()).resolve()
    unknown = [e for e in entries if module_file(e, root) is None]
    if unknown:
        raise ValueError(f"not modules of the {PACKAGE} package: {', '.join(unknown)}")
    return list(_closure(tuple(entries), root))


def _data_files(package_dir: Path) -> list[Path]:
    """Non-Python files whose nearest package is ``package_dir`` (not those of a subpackage)."""
    found = []
    for path in sorted(package_dir.rglob("*")):
        if not path.is_file() or path.suffix == ".py" or path.suffix in SKIPPED_SUFFIXES:
            continue
        if any(part in SKIPPED_PARTS for part in path.parts):
            continue
        owner = path.parent
        while owner != package_dir and not (owner / "__init__.py").is_file():
            owner = owner.parent
        if owner == package_dir:
            found.append(path)
    return found


def code_files(entries: Iterable[str], root: Optional[Path] = None) -> list[Path]:
    """The source files and package data of the import closure of ``entries``."""
    root = (root or package_root()).resolve()
    files: list[Path] = []
    for name in import_closure(entries, root):
        path = module_file(name, root)
        files.append(path)
        if _is_package(path):
            files.extend(_data_files(path.parent))
    return sorted(set(files))


def fingerprint(module: str, root: Optional[Path] = None) -> str:
    """A hash of ``module``'s import closure (file names and contents). A resumable stage's kept log
    keys its entries with it, so an edited module never serves a result the old code computed."""
    import hashlib

    digest = hashlib.sha256()
    for path in code_files([module], root):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]
