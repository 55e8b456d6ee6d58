"""How one reward service instance behaves: limits, batching, auth. Set once, at startup."""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass

from rewardkit.errors import ConfigError

__all__ = ["ServerConfig", "is_loopback"]


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Options of `create_app`; the CLI fills them from flags."""

    #: Bearer token every request but `GET /health` must carry; None: no auth.
    token: str | None = None
    #: Most samples one request may carry (a `responses` group counts each response).
    max_batch: int = 4096
    #: Largest request body accepted, in bytes (413 beyond).
    max_body_bytes: int = 32 * 1024 * 1024
    #: How long the micro-batcher waits for more requests before scoring, in seconds.
    batch_window_s: float = 0.005
    #: Most samples merged into one scoring call (a larger request is scored alone).
    batch_max_samples: int = 1024
    #: Scoring calls allowed to run at once.
    max_inflight_batches: int = 4
    #: Reward reported to OpenRLHF for an unscored sample (it needs a number).
    fill_value: float = 0.0
    #: Most seconds a client may take to send a request's headers (408 and closed beyond).
    header_timeout_s: float = 10.0
    #: Most seconds a client may take to send a request's body (408 and closed beyond).
    body_timeout_s: float = 60.0
    #: Seconds an idle kept-alive connection stays open between requests.
    keep_alive_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if self.token is not None and not self.token.strip():
            raise ConfigError("token must not be empty; omit it to disable authentication")
        for name in ("max_batch", "max_body_bytes", "batch_max_samples", "max_inflight_batches"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not (0 <= self.batch_window_s <= 10):
            raise ConfigError(f"batch_window_s must be within [0, 10] s, got {self.batch_window_s}")
        for name in ("header_timeout_s", "body_timeout_s", "keep_alive_timeout_s"):
            value = getattr(self, name)
            if not (0 < value <= 3600):
                raise ConfigError(f"{name} must be within (0, 3600] s, got {value}")
        if not math.isfinite(self.fill_value):
            raise ConfigError(f"fill_value must be a finite number, got {self.fill_value}")


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
