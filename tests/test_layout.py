"""The package's import direction runs one way, down the pipeline."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "simreal"
#: Each stage may import only from the stages before it (and itself).
# adaptation (the estimators an adaptive policy carries) comes right after envs: loading, evaluating and training a
# policy all need it
ORDER = ["base", "envs", "adaptation", "runs", "evaluate", "train", "sysid", "transfer", "deploy", "tools", "cli"]
BASE = {"compat", "errors", "fileio", "locks", "resources", "seeding"}


def stage(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "simreal" or len(parts) == 1:
        return None
    return "base" if parts[1] in BASE else parts[1]


def imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_module_imports_only_earlier_stages(path):
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
    own = stage(module)
    if own is None:
        return  # simreal/__init__.py: the public API on top of everything
    for imported in imports(path):
        other = stage(imported)
        if other is not None:
            assert ORDER.index(other) <= ORDER.index(own), f"{module} imports {imported}"


@pytest.mark.parametrize("package", sorted(p.parent for p in PACKAGE.glob("*/__init__.py")), ids=lambda p: p.name)
def test_every_package_docstring_names_each_of_its_modules(package):
    doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
    missing = [m.stem for m in package.glob("*.py") if m.stem != "__init__" and f".{m.stem}`" not in doc]
    assert not missing, f"{package.name}/__init__.py does not name {missing}"
