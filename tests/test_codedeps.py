"""Code dependencies are the import closure of a stage's module inside the package."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from metahpo import codedeps, pipeline


def _package(root: Path, files: dict[str, str]) -> Path:
    package = root / "metahpo"
    for name, text in {"__init__.py": "", **files}.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return package


def test_closure_follows_module_level_lazy_relative_and_parent_imports(tmp_path):
    package = _package(tmp_path, {
        "entry.py": """
            import metahpo.a
            from metahpo.sub import b
            def later():
                from metahpo.lazy import thing  # runs when later() does: a dependency
        """,
        "a.py": "from . import errors\n",
        "errors.py": "",
        "sub/__init__.py": "",
        "sub/b.py": "from .deep import c\n",
        "sub/deep/__init__.py": "",
        "sub/deep/c.py": "import os\n",  # outside the package: not followed
        "lazy.py": "",
        "unused.py": "",
        "sub/templates/page.html": "<p>data of metahpo.sub</p>",
        "sub/deep/data.txt": "data of metahpo.sub.deep",
    })  # fmt: skip
    assert codedeps.import_closure(["metahpo.entry"], package) == [
        "metahpo", "metahpo.a", "metahpo.entry", "metahpo.errors", "metahpo.lazy", "metahpo.sub",
        "metahpo.sub.b", "metahpo.sub.deep", "metahpo.sub.deep.c",
    ]  # fmt: skip
    files = {str(f.relative_to(package)) for f in codedeps.code_files(["metahpo.entry"], package)}
    assert "unused.py" not in files
    assert {"sub/templates/page.html", "sub/deep/data.txt"} <= files  # package data travels with its package


def test_validation_imports_and_workflow_modules_are_not_followed(tmp_path):
    package = _package(tmp_path, {
        "entry.py": "import metahpo.config\nimport metahpo.pipeline\n",
        "config.py": "from metahpo import errors\ndef check():\n    import metahpo.models\n",
        "errors.py": "",
        "models.py": "",
        "pipeline.py": "import metahpo.models\n",
    })  # fmt: skip
    closure = codedeps.import_closure(["metahpo.entry"], package)
    assert closure == ["metahpo", "metahpo.config", "metahpo.entry", "metahpo.errors"]


def test_unknown_entry_module_is_refused(tmp_path):
    package = _package(tmp_path, {})
    with pytest.raises(ValueError, match="metahpo.nowhere"):
        codedeps.import_closure(["metahpo.nowhere"], package)


def test_stage_code_is_its_script_and_closure(repo_root):
    for stage in pipeline.STAGES:
        code = stage.code(str(repo_root))
        assert code[0] == stage.script
        assert f"src/metahpo/stages/{stage.name}.py" in code
        assert all((repo_root / path).is_file() for path in code), stage.name
    report = pipeline.STAGE_BY_NAME["report"].code(str(repo_root))
    assert any(path.startswith("src/metahpo/report/templates/") for path in report)
    # a stage does not depend on code it never imports: the meta-model stage trains nothing
    assert "src/metahpo/training.py" not in pipeline.STAGE_BY_NAME["fit_meta"].code(str(repo_root))
    assert "src/metahpo/models/bert.py" not in pipeline.STAGE_BY_NAME["download"].code(str(repo_root))


def test_every_stage_writes_into_one_results_folder_of_its_own():
    folders = [stage.folder for stage in pipeline.STAGES]
    assert len(set(folders)) == len(folders)
    for stage in pipeline.STAGES:
        assert all(out.startswith(f"{pipeline.RESULTS}/{stage.folder}/") for out in stage.all_outputs()), stage.name


STAGE_SIDE = ("metahpo.stages", "metahpo.cli", "metahpo.config")  # may read the whole params


def _runtime_imports(path: Path) -> set[str]:
    """Modules a file imports when it runs (``if TYPE_CHECKING:`` blocks are annotations only)."""
    import ast

    tree = ast.parse(path.read_text())
    found: set[str] = set()

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and getattr(child.test, "id", None) == "TYPE_CHECKING":
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module:
                found.add(child.module)
                found.update(f"{child.module}.{alias.name}" for alias in child.names)
            visit(child)

    visit(tree)
    return found


def test_library_modules_never_import_the_params_module_or_a_stage():
    root = codedeps.package_root()
    offenders = {}
    for path in sorted(root.rglob("*.py")):
        module = ".".join(("metahpo", *path.relative_to(root).with_suffix("").parts)).removesuffix(".__init__")
        if module.startswith(STAGE_SIDE):
            continue
        bad = {m for m in _runtime_imports(path) if m == "metahpo.config" or m.startswith("metahpo.stages")}
        if bad:
            offenders[module] = sorted(bad)
    assert offenders == {}, "library modules take params sections from their stage, never import config or a stage"


def test_fingerprint_changes_with_the_closure_only(tmp_path):
    import shutil

    from metahpo.codedeps import code_files, fingerprint, package_root

    root = tmp_path / "metahpo"
    shutil.copytree(package_root(), root, ignore=shutil.ignore_patterns("__pycache__"))
    before = fingerprint("metahpo.stages.lr_eval", root)
    closure = set(code_files(["metahpo.stages.lr_eval"], root))
    outside = next(p for p in sorted(root.rglob("*.py")) if p.resolve() not in closure)
    outside.write_text(outside.read_text() + "\n# edited\n")
    assert fingerprint("metahpo.stages.lr_eval", root) == before
    inside = root / "lrcontrol" / "methods.py"
    inside.write_text(inside.read_text() + "\n# edited\n")
    assert fingerprint("metahpo.stages.lr_eval", root) != before
