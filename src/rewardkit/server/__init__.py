"""The reward service behind `rewardkit serve`: OpenRLHF's `/get_reward` and a native API.

FastAPI and uvicorn are imported only when the app is built (`pip install 'rewardkit[server]'`);
the OpenRLHF response extraction, the micro-batcher and the metrics need neither.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rewardkit._lazy import load_lazy as _load_lazy
from rewardkit.integrations.openrlhf_protocol import (
    extract_response,
    openrlhf_payload,
    strip_special_tokens,
)

if TYPE_CHECKING:
    from rewardkit.server.app import create_app
    from rewardkit.server.batching import MicroBatcher
    from rewardkit.server.config import ServerConfig
    from rewardkit.server.metrics import Metrics

__all__ = [
    "Metrics",
    "MicroBatcher",
    "ServerConfig",
    "create_app",
    "extract_response",
    "openrlhf_payload",
    "strip_special_tokens",
]

_LAZY = {
    "ServerConfig": "rewardkit.server.config",
    "create_app": "rewardkit.server.app",
    "MicroBatcher": "rewardkit.server.batching",
    "Metrics": "rewardkit.server.metrics",
}


def __getattr__(name: str) -> Any:
    return _load_lazy(__name__, _LAZY, name)
