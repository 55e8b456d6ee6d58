"""The public surface of `rewardkit` is what we mean it to be (after httpx's test of the same name).

Adding a name to `rewardkit.__all__` is an API decision: update EXPECTED here in the same
commit. Submodules' `__all__` must name things that exist, and `import rewardkit` must stay
light (no torch, transformers, FastAPI, aiohttp or Math-Verify).
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import types

import pytest

import rewardkit

EXPECTED = [
    "ConfigError",
    "InputError",
    "InvalidRewardError",
    "Reward",
    "RewardReport",
    "RewardResult",
    "RewardSpec",
    "RewardkitError",
    "Sample",
    "Score",
    "Scorer",
    "UnknownRewardError",
    "Unscored",
    "__version__",
    "available_rewards",
    "build_reward",
    "load_spec",
    "register_reward",
]


def test_all_is_what_we_mean() -> None:
    assert rewardkit.__all__ == EXPECTED
    assert rewardkit.__all__ == sorted(rewardkit.__all__)


def test_every_public_attribute_is_exported() -> None:
    public = {
        name
        for name, value in vars(rewardkit).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public <= set(rewardkit.__all__), (
        f"public but not in __all__: {public - set(rewardkit.__all__)}"
    )


@pytest.mark.parametrize("name", EXPECTED)
def test_exported_names_resolve_and_belong_to_rewardkit(name: str) -> None:
    value = getattr(rewardkit, name)
    if name == "__version__":
        assert isinstance(value, str) and value.count(".") == 2
        return
    members = value.__args__ if isinstance(value, types.UnionType) else (value,)
    for member in members:
        assert member.__module__.startswith("rewardkit"), f"{name} comes from {member.__module__}"


@pytest.mark.parametrize(
    "module",
    [
        "rewardkit.types",
        "rewardkit.reward",
        "rewardkit.registry",
        "rewardkit.spec",
        "rewardkit.scoring",
        "rewardkit.io",
        "rewardkit.rules.format",
        "rewardkit.rules.language",
        "rewardkit.rules.length",
    ],
)
def test_module_all_names_exist(module: str) -> None:
    mod = importlib.import_module(module)
    names = mod.__all__
    missing = [name for name in names if not hasattr(mod, name)]
    assert not missing, f"{module}.__all__ names missing attributes: {missing}"
    assert len(names) == len(set(names))


def test_error_tree_roots() -> None:
    for name in ("ConfigError", "InputError", "InvalidRewardError", "UnknownRewardError"):
        assert issubclass(getattr(rewardkit, name), rewardkit.RewardkitError)
    assert issubclass(rewardkit.UnknownRewardError, rewardkit.ConfigError)


def test_import_rewardkit_stays_light() -> None:
    heavy = [
        "torch",
        "transformers",
        "fastapi",
        "aiohttp",
        "math_verify",
        "datasets",
        "pyarrow",
        "tqdm",
    ]
    code = (
        "import sys, rewardkit, rewardkit.rules.format, rewardkit.rules.language, "
        "rewardkit.rules.length, rewardkit.scoring, rewardkit.io\n"
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"


def test_backends_exports_resolve_lazily_without_aiohttp() -> None:
    # The test transport and the scripted server are public (users test their judges
    # with them), yet `import rewardkit.backends` and naming a transport start nothing.
    code = (
        "import sys\n"
        "from rewardkit.backends import HTTPRequest, HTTPResponse, MockTransport, Transport\n"
        "print(sorted(m for m in ('aiohttp', 'torch', 'transformers') if m in sys.modules))\n"
        "import rewardkit.backends as b\n"
        "print(sorted(n for n in b.__all__ if not getattr(b, n).__module__.startswith("
        "'rewardkit.backends')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.split("\n")[:2] == ["[]", "[]"], out.stdout + out.stderr
