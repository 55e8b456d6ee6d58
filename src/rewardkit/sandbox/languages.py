"""The languages the sandbox can run: a file name and a command line each.

Add one by adding a row. `memory_rlimit` says how `memory_mb` is enforced: "as" (address
space) suits CPython and shells; V8 reserves huge virtual ranges up front, so node gets
"data" instead.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from typing import Literal

from rewardkit.errors import ConfigError

__all__ = ["LANGUAGES", "Language", "available_languages", "get_language", "language_for_fence"]

SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True, slots=True)
class Language:
    name: str
    filename: str
    #: argv; "{python}" is this interpreter, "{file}" the program's file name
    command: tuple[str, ...]
    #: fence tags (```py) that select this language
    aliases: tuple[str, ...] = ()
    memory_rlimit: Literal["as", "data"] = "as"

    def argv(self) -> list[str]:
        return [part.format(python=sys.executable, file=self.filename) for part in self.command]

    def available(self) -> bool:
        exe = self.argv()[0]
        return shutil.which(exe, path=SANDBOX_PATH) is not None or shutil.which(exe) is not None


LANGUAGES: dict[str, Language] = {
    # -I: ignore PYTHON* variables and user site; -B: the tree is read-only anyway
    "python": Language("python", "main.py", ("{python}", "-I", "-B", "{file}"), ("py", "python3")),
    "bash": Language("bash", "main.sh", ("bash", "{file}"), ("sh", "shell")),
    "javascript": Language("javascript", "main.js", ("node", "{file}"), ("js", "node"), "data"),
}


def get_language(name: str) -> Language:
    try:
        return LANGUAGES[name]
    except KeyError:
        raise ConfigError(
            f"unknown sandbox language {name!r}; choose one of {', '.join(LANGUAGES)}"
        ) from None


def language_for_fence(tag: str) -> Language | None:
    """The language a code fence's info string names, or None."""
    tag = tag.strip().lower()
    for lang in LANGUAGES.values():
        if tag == lang.name or tag in lang.aliases:
            return lang
    return None


def available_languages() -> list[str]:
    return [name for name, lang in LANGUAGES.items() if lang.available()]
