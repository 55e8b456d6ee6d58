"""Lazy package exports: a public name's module is imported on first attribute access.

Packages use it so `import rewardkit.X` stays light (no torch, FastAPI, aiohttp) until a
heavy class is actually used.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from typing import Any


def load_lazy(package: str, table: Mapping[str, str], name: str) -> Any:
    """`table[name]` names the module defining `name`; import it, cache the value on the
    package (later lookups skip `__getattr__`), or raise the usual AttributeError."""
    module = table.get(name)
    if module is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    setattr(sys.modules[package], name, value)
    return value
