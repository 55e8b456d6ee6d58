"""Which names in the test code stand for the program's functions, decided from its text."""

from __future__ import annotations

import ast
import builtins
import symtable
import sys

from rewardkit.rules._asserts.evaluator import TEST_FILENAME


def _scopes(table: symtable.SymbolTable) -> list[symtable.SymbolTable]:
    out = [table]
    for child in table.get_children():
        out += _scopes(child)
    return out


def free_names(source: str) -> tuple[list[str], list[str]]:
    """(the program's names, stdlib modules) that the test code reads but never binds.

    A name is the program's when some scope of the test code reads it as a global and
    nothing binds it at module level (no assignment, def, import, `global` write).
    Builtin names always mean the builtin, whatever the program defines: a program that
    rebinds `sorted` or `len` cannot change what the tests compute. A free name that is a
    standard-library module used only as `name.attr` (MBPP's `math.isclose` without an
    import) is that module, imported on the trusted side.
    Raises SyntaxError for code that does not parse.
    """
    tree = ast.parse(source, TEST_FILENAME)
    top = symtable.symtable(source, TEST_FILENAME, "exec")
    bound: set[str] = set()
    read: set[str] = set()
    for scope in _scopes(top):
        for sym in scope.get_symbols():
            name = sym.get_name()
            if scope is top:
                if sym.is_assigned() or sym.is_imported() or sym.is_namespace():
                    bound.add(name)
                if sym.is_referenced():
                    read.add(name)
            elif sym.is_global() or (
                # a class body reads unbound names from the globals too
                scope.get_type() == "class" and not sym.is_assigned() and not sym.is_free()
            ):
                if sym.is_declared_global() and sym.is_assigned():
                    bound.add(name)
                if sym.is_referenced():
                    read.add(name)
    # dunders (`__name__`, `__file__`) are the test module's own, never the program's
    dunders = {n for n in read if n.startswith("__") and n.endswith("__")}
    free = sorted(read - bound - dunders - set(dir(builtins)))
    attribute_only = _attribute_only(tree, set(free))
    modules = sorted(n for n in free if n in sys.stdlib_module_names and n in attribute_only)
    return [n for n in free if n not in modules], modules


def _attribute_only(tree: ast.AST, names: set[str]) -> set[str]:
    """Names from `names` whose every read is `name.attr`."""
    reads = [n for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id in names]
    attribute_values = {
        id(n.value)
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
    }
    return {n.id for n in reads} - {n.id for n in reads if id(n) not in attribute_values}
