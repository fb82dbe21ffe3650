"""dvc.yaml's code dependencies match what each stage's entry point really imports.

A stage whose `deps` miss a module it runs is not re-run when that module changes, and
`dvc repro` then serves stale outputs. The imports are read statically: every `import` in
the entry point and, transitively, in each project module it reaches, function-level ones
included. Command handlers (`cmd_<command>` functions) are the exception: only the handler
of the stage's own command is followed, since the CLI imports each command's code lazily.
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
    """Collects the modules one file imports, skipping other commands' handlers."""

    def __init__(self, module: str, command: str) -> None:
        self.package = module.rsplit(".", 1)[0]
        self.handler = "cmd_" + command.replace("-", "_")
        self.names: set[str] = set()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        if node.name.startswith("cmd_") and node.name != self.handler:
            return
        self.generic_visit(node)

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


def imported_files(entry: Path, command: str) -> set[Path]:
    """Return every project source file that running entry (for command) imports."""
    seen: set[Path] = set()
    pending = [(entry, "__main__")]
    while pending:
        path, name = pending.pop()
        collector = ImportCollector(name, command)
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


def entry_point(cmd: str) -> tuple[Path, str]:
    """Return (script, CLI command it runs) of a stage's `python pipelines/X.py ...` cmd."""
    script = PROJECT_ROOT / cmd.split()[1]
    calls = [
        node
        for node in ast.walk(ast.parse(script.read_text()))
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "main"
    ]
    first = calls[0].args[0] if calls and calls[0].args else None
    command = ""
    if isinstance(first, ast.List) and isinstance(first.elts[0], ast.Constant):
        command = str(first.elts[0].value)
    return script, command


def stages() -> dict[str, dict[str, object]]:
    spec = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"]
    return {name: stage.get("do", stage) for name, stage in spec.items()}


def covered(path: Path, deps: list[str]) -> bool:
    relative = path.relative_to(PROJECT_ROOT).as_posix()
    return any(relative == dep or relative.startswith(dep.rstrip("/") + "/") for dep in deps)


@pytest.mark.parametrize("name", sorted(stages()))
def test_each_stage_depends_on_exactly_the_code_it_imports(name: str) -> None:
    stage = stages()[name]
    script, command = entry_point(str(stage["cmd"]))
    deps = [str(dep) for dep in stage["deps"]]  # type: ignore[attr-defined]
    used = imported_files(script, command)
    assert script.relative_to(PROJECT_ROOT).as_posix() in deps, f"{name}: add its own script"
    missing = sorted(p.relative_to(PROJECT_ROOT).as_posix() for p in used if not covered(p, deps))
    assert not missing, f"stage {name} imports code its deps leave out: {missing}"
    code_deps = [dep for dep in deps if dep.startswith("src/")]
    stale = [dep for dep in code_deps if not any(covered(p, [dep]) for p in used)]
    assert not stale, f"stage {name} lists code it never imports: {stale}"


def test_the_import_reader_follows_lazy_imports_but_only_the_stage_command() -> None:
    script, command = entry_point("python pipelines/train.py resnet18")
    assert command == "train"
    used = {p.relative_to(SRC).as_posix() for p in imported_files(script, command)}
    assert "aidetector/training/train.py" in used  # imported inside cmd_train
    assert "aidetector/data/demo.py" not in used  # only cmd_demo_data imports it
