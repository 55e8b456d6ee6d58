"""The one exception tree of rewardkit. The library raises; the CLI translates.

    RewardkitError
    ├── ConfigError              a spec, option or template is wrong (names what to fix)
    │   └── UnknownRewardError   a reward name that is not registered
    ├── InputError               a sample or input file is malformed
    ├── MissingDependencyError   an optional extra is not installed (names the pip command)
    ├── InvalidRewardError       a reward came out NaN, infinite or out of its range
    ├── StoreError               the judge cache file could not be opened, read or written
    ├── SandboxError             untrusted code could not be run safely
    │   └── IsolationUnavailableError   this host cannot isolate code; opt in or fix the host
    ├── DeadlineExceeded         a call ran past its deadline; its worker was killed (also TimeoutError)
    ├── WorkerCrashed            a deadline-pool worker died mid-call (also RuntimeError)
    ├── PoolClosed               the deadline pool was closed (also RuntimeError)
    └── BackendError             a judge backend failed after its retries
        ├── BackendTimeoutError
        ├── BackendConnectionError
        └── BackendHTTPError     carries the HTTP status

The three deadline-pool errors live in `rewardkit.deadline` (with the pool that raises them);
every other class is defined here. tests/test_errors.py checks that every exception class
rewardkit defines is in this tree and drawn above.

A failure to *score* one sample (no answer found, judge output unparseable) is not an
exception: it is data, an `Unscored` result with a reason.
"""

from __future__ import annotations


class RewardkitError(Exception):
    """Base of every error rewardkit raises on purpose."""


class ConfigError(RewardkitError, ValueError):
    """A spec, option or template is invalid."""


class UnknownRewardError(ConfigError, KeyError):
    """A reward name that is not registered."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class InputError(RewardkitError, ValueError):
    """A sample or an input file is malformed."""


class MissingDependencyError(RewardkitError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""

    def __init__(self, package: str, extra: str, feature: str = "") -> None:
        what = f" for {feature}" if feature else ""
        super().__init__(
            f"{package} is required{what}; install it with: pip install 'rewardkit[{extra}]'"
        )
        self.package = package
        self.extra = extra


class InvalidRewardError(RewardkitError, ValueError):
    """A reward value is NaN, infinite, or outside the reward's declared range."""


class StoreError(RewardkitError):
    """The judge cache could not be opened or written (or was used after `close()`)."""


class SandboxError(RewardkitError):
    """Untrusted code could not be executed safely."""


class IsolationUnavailableError(SandboxError):
    """This host cannot isolate untrusted code (no namespaces, no unprivileged uid)."""


class BackendError(RewardkitError):
    """A judge backend failed after its retries."""


class BackendTimeoutError(BackendError, TimeoutError):
    """A backend call exceeded its timeout."""


class BackendConnectionError(BackendError, ConnectionError):
    """The backend could not be reached."""


class BackendHTTPError(BackendError):
    """The backend answered with an HTTP error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
