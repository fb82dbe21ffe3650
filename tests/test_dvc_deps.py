"""dvc.yaml's code dependencies match what each stage's entry point really imports.

A stage whose `deps` miss a module it runs is not re-run when that module changes, and
`dvc repro` then serves stale outputs; one that lists code it never runs re-runs for nothing.
The imports are read statically: every `import` in the stage's module
(`python -m aidetector.stages.<name>`) and, transitively, in each project module it
reaches, function-level ones included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from conftest import PROJECT_ROOT

SRC = PROJECT_ROOT / "src"
PACKAGE = "aidetector"


def module_path(name: str) -> Path | None:
    """Return the file of a project module (or package), None for anything else."""
    if name != PACKAGE and not name.startswith(PACKAGE + "."):
        return None
    base = SRC.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


class ImportCollector(ast.NodeVisitor):
    """Collects the modules one file imports."""

    def __init__(self, module: str) -> None:
        self.package = module.rsplit(".", 1)[0]
        self.names: set[str] = set()

    def visit_Import(self, node: ast.Import) -> None:
        self.names.update(alias.name for alias in node.names)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            parent = self.package.rsplit(".", node.level - 1)[0] if node.level > 1 else self.package
            base = f"{parent}.{base}" if base else parent
        self.names.add(base)
        # `from package import module` imports a module, not just a name.
        self.names.update(f"{base}.{alias.name}" for alias in node.names)


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def has_code(path: Path) -> bool:
    """False for a package marker holding nothing but a docstring."""
    body = ast.parse(path.read_text()).body
    return any(
        not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)) for node in body
    )


def imported_files(entry: Path) -> set[Path]:
    """Return every project source file that running entry imports, entry included."""
    seen: set[Path] = {entry}
    pending = [(entry, module_name(entry))]
    while pending:
        path, name = pending.pop()
        collector = ImportCollector(name)
        collector.visit(ast.parse(path.read_text()))
        for imported in collector.names:
            # Importing a.b.c runs the packages a and a.b first.
            parts = imported.split(".")
            for depth in range(1, len(parts) + 1):
                target = module_path(".".join(parts[:depth]))
                if target is not None and target not in seen:
                    seen.add(target)
                    pending.append((target, module_name(target)))
    return {path for path in seen if path.name != "__init__.py" or has_code(path)}


def entry_point(cmd: str) -> Path:
    """Return the module file a stage's `python -m aidetector.stages.X ...` cmd runs."""
    words = cmd.split()
    assert words[:2] == ["python", "-m"], f"a stage runs its module: {cmd}"
    path = module_path(words[2])
    assert path is not None, f"no module {words[2]}"
    return path


def stages() -> dict[str, dict[str, object]]:
    spec = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"]
    return {name: stage.get("do", stage) for name, stage in spec.items()}


def covered(path: Path, deps: list[str]) -> bool:
    relative = path.relative_to(PROJECT_ROOT).as_posix()
    return any(relative == dep or relative.startswith(dep.rstrip("/") + "/") for dep in deps)


# Stages that train, evaluate or decide: serving, release and bulk-scoring code is not theirs.
TRAINING_STAGES = (
    "demo_data",
    "prepare",
    "prepare_set",
    "train",
    "evaluate",
    "register",
    "promote",
)
RUNTIME_PACKAGES = ("src/aidetector/serving/", "src/aidetector/release/", "src/aidetector/batch/")


@pytest.mark.parametrize("name", sorted(stages()))
def test_each_stage_depends_on_exactly_the_code_it_imports(name: str) -> None:
    stage = stages()[name]
    module = entry_point(str(stage["cmd"]))
    deps = [str(dep) for dep in stage["deps"]]  # type: ignore[attr-defined]
    used = imported_files(module)
    missing = sorted(p.relative_to(PROJECT_ROOT).as_posix() for p in used if not covered(p, deps))
    assert not missing, f"stage {name} imports code its deps leave out: {missing}"
    code_deps = [dep for dep in deps if dep.startswith("src/")]
    stale = [dep for dep in code_deps if not any(covered(p, [dep]) for p in used)]
    assert not stale, f"stage {name} lists code it never imports: {stale}"


@pytest.mark.parametrize("name", TRAINING_STAGES)
def test_an_edit_to_serving_release_or_bulk_scoring_code_reruns_no_training_stage(
    name: str,
) -> None:
    deps = [str(dep) for dep in stages()[name]["deps"]]  # type: ignore[index]
    runtime = [dep for dep in deps if dep.startswith(RUNTIME_PACKAGES)]
    assert runtime == [], f"stage {name} would re-run when this code changes: {runtime}"
    used = imported_files(entry_point(str(stages()[name]["cmd"])))
    assert not any(
        p.relative_to(PROJECT_ROOT).as_posix().startswith(RUNTIME_PACKAGES) for p in used
    )


def test_the_import_reader_follows_function_level_imports() -> None:
    used = {p.relative_to(SRC).as_posix() for p in imported_files(SRC / "aidetector/cli.py")}
    assert "aidetector/stages/train.py" in used  # imported inside cmd_train
    assert "aidetector/training/train.py" in used  # and what it imports in turn
    train = {
        p.relative_to(SRC).as_posix() for p in imported_files(SRC / "aidetector/stages/train.py")
    }
    assert "aidetector/data/demo.py" not in train  # only the demo_data stage runs it
