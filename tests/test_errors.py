"""One exception tree: every exception class rewardkit defines derives from `RewardkitError`
and is drawn, under its real parent, in the tree in `rewardkit.errors`' docstring."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from types import ModuleType

import pytest

import rewardkit
from rewardkit import errors
from rewardkit.errors import ConfigError, RewardkitError

# Exceptions that never leave the module that raises them (caught and re-raised as a
# `RewardkitError` there). Private names (`_Retryable`) count as such without a listing.
INTERNAL = {
    # the out-of-process assert checker's own signals, never raised to a caller: a value
    # that is not plain data, a program's exception replayed inside the trusted test code,
    # and a BaseException the test code's `except Exception` cannot swallow
    "rewardkit.rules._asserts.codec.CodecError",
    "rewardkit.rules._asserts.evaluator.CandidateError",
    "rewardkit.rules._asserts.evaluator.UnsupportedAssert",
    # caught by the app and answered as a 413 (server/app.py)
    "rewardkit.server.prepare.TooManySamples",
}


def _modules() -> list[ModuleType]:
    found = []
    for info in pkgutil.walk_packages(rewardkit.__path__, "rewardkit."):
        if info.name.endswith("__main__"):
            continue
        try:
            found.append(importlib.import_module(info.name))
        except ImportError:  # an optional extra (torch, fastapi, ...) is not installed
            continue
    return found


def _exception_classes() -> dict[str, type[BaseException]]:
    classes: dict[str, type[BaseException]] = {}
    for module in _modules():
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                # warning categories (RewardHackingWarning) are issued, not raised
                and not issubclass(obj, Warning)
                and obj.__module__ == module.__name__
                and not name.startswith("_")
            ):
                classes[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return classes


CLASSES = _exception_classes()


def test_the_walk_finds_the_tree() -> None:
    # a walk that found nothing would make the next test pass vacuously
    names = {cls.__name__ for cls in CLASSES.values()}
    assert {"ConfigError", "BackendHTTPError", "DeadlineExceeded", "StoreError"} <= names


@pytest.mark.parametrize("path", sorted(set(CLASSES) - INTERNAL))
def test_every_exception_class_derives_from_the_root(path: str) -> None:
    assert issubclass(CLASSES[path], RewardkitError), f"{path} is outside the exception tree"


def _drawn_tree() -> dict[str, str]:
    """name -> parent name, read from the box drawing in the errors module's docstring."""
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in (errors.__doc__ or "").splitlines():
        match = re.match(r"^(\s*(?:[│ ]\s*)*(?:[├└]── )?)(\w+)", line)
        if not match or not re.search(r"Error|Exceeded|Crashed|Closed", match.group(2)):
            continue
        depth = len(match.group(1))
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack:
            parents[match.group(2)] = stack[-1][1]
        stack.append((depth, match.group(2)))
    return parents


@pytest.mark.parametrize(
    "path", sorted(set(CLASSES) - INTERNAL - {"rewardkit.errors.RewardkitError"})
)
def test_every_exception_class_is_drawn_under_its_parent(path: str) -> None:
    cls = CLASSES[path]
    parent = next(base for base in cls.__mro__[1:] if issubclass(base, RewardkitError))
    assert _drawn_tree().get(cls.__name__) == parent.__name__


def test_the_internal_list_is_not_stale() -> None:
    """The allow-list names only classes that exist; a stale entry is a failure."""
    assert set(CLASSES) >= INTERNAL


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (
            lambda: __import__("rewardkit.rules.format").rules.format.summary_format("x", token=""),
            ConfigError,
        ),
        # a path through a file is the user's to fix, like an unusable -o (a ConfigError)
        (lambda: __import__("rewardkit.store").store.JudgeCache("/dev/null/x.sqlite"), ConfigError),
    ],
    ids=["summary_format empty token", "cache under a non-directory"],
)
def test_user_mistakes_raise_from_the_tree(call: object, error: type[RewardkitError]) -> None:
    with pytest.raises(error):
        call()  # type: ignore[operator]
