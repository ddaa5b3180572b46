"""The core stays pure: no I/O modules, no clock reads (import-linter covers client libraries)."""

from __future__ import annotations

import ast
from pathlib import Path

import reconciler.core

CORE = Path(reconciler.core.__file__).parent
FORBIDDEN_MODULES = {"os", "subprocess", "socket", "http", "urllib", "shutil", "time", "random",
                     "threading", "asyncio", "pathlib", "tempfile", "io.open"}
FORBIDDEN_CALLS = {"now", "utcnow", "today", "open", "time"}


def _imports(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _calls(tree: ast.AST) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            out.add(f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", ""))
    return out


def test_core_modules_do_no_io_and_read_no_clock() -> None:
    files = sorted(CORE.rglob("*.py"))
    assert len(files) > 15
    for path in files:
        tree = ast.parse(path.read_text())
        bad_imports = _imports(tree) & FORBIDDEN_MODULES
        assert not bad_imports, f"{path}: imports {bad_imports}"
        bad_calls = _calls(tree) & FORBIDDEN_CALLS
        assert not bad_calls, f"{path}: calls {bad_calls}"


def test_every_package_has_a_docstring_saying_what_it_owns() -> None:
    root = CORE.parent
    for init in sorted(root.rglob("__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc) > 20, f"{init} lacks a package docstring"
