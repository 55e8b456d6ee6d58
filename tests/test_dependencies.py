"""Core dependencies are imported plainly: a guard with a fallback for a package that is
always installed is dead code that can only rot (and hides a broken install)."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Distribution name -> the module it installs, where they differ.
_MODULE = {"pyyaml": "yaml", "math-verify": "math_verify"}


def core_modules() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {
        re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0].lower() for spec in project["dependencies"]
    }
    return {_MODULE.get(name, name.replace("-", "_")) for name in names}


def guarded_imports(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, top-level module) of imports inside a `try` that catches ImportError."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Try):
            continue
        caught = {
            name.id
            for handler in node.handlers
            if handler.type is not None
            for name in ast.walk(handler.type)
            if isinstance(name, ast.Name)
        }
        if not caught & {"ImportError", "ModuleNotFoundError"}:
            continue
        for stmt in node.body:
            for sub in ast.walk(stmt):
                if isinstance(sub, ast.Import):
                    found += [(sub.lineno, alias.name.split(".")[0]) for alias in sub.names]
                elif isinstance(sub, ast.ImportFrom) and sub.module and not sub.level:
                    found.append((sub.lineno, sub.module.split(".")[0]))
    return found


def test_the_core_list_is_read() -> None:
    assert {"orjson", "aiohttp", "pydantic", "yaml", "math_verify"} <= core_modules()


def test_the_check_finds_a_guarded_core_import() -> None:
    source = "try:\n    import orjson\nexcept ImportError:\n    orjson = None\n"
    assert guarded_imports(ast.parse(source)) == [(2, "orjson")]


def test_no_module_guards_a_core_dependency() -> None:
    core = core_modules()
    offenders = [
        f"{path.relative_to(ROOT)}:{line} guards `import {module}`"
        for path in sorted((ROOT / "src" / "rewardkit").rglob("*.py"))
        for line, module in guarded_imports(ast.parse(path.read_text(), str(path)))
        if module in core
    ]
    assert offenders == []
