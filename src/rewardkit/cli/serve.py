"""`rewardkit serve`: the reward service over HTTP (OpenRLHF protocol and native API)."""

from __future__ import annotations

import argparse
import os
import sys

from rewardkit.cli._spec_args import add_spec_arguments, spec_from_args
from rewardkit.errors import ConfigError, MissingDependencyError

TOKEN_ENV = "REWARDKIT_TOKEN"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_spec_arguments(parser)
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 exposes it)",
    )
    parser.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    parser.add_argument(
        "--token",
        default=None,
        help=f"require 'Authorization: Bearer TOKEN' (default: ${TOKEN_ENV}; prefer the "
        "environment variable, a flag shows in the process list)",
    )
    parser.add_argument(
        "--max-batch",
        type=int,
        default=4096,
        metavar="N",
        help="most samples per request (413 beyond)",
    )
    parser.add_argument(
        "--max-body-mb",
        type=float,
        default=32.0,
        metavar="M",
        help="largest request body in MiB (413 beyond)",
    )
    parser.add_argument(
        "--batch-window-ms",
        type=float,
        default=5.0,
        metavar="MS",
        help="how long to gather concurrent requests into one scoring call (0: no wait)",
    )
    parser.add_argument(
        "--batch-max-samples",
        type=int,
        default=1024,
        metavar="N",
        help="most samples per scoring call",
    )
    parser.add_argument(
        "--max-inflight", type=int, default=4, metavar="N", help="scoring calls running at once"
    )
    parser.add_argument(
        "--fill-value",
        type=float,
        default=0.0,
        help="reward sent to OpenRLHF for an unscored sample (default 0.0; counted in extra_logs)",
    )
    parser.add_argument(
        "--header-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds a client may take to send request headers; slower ones get 408 and are dropped",
    )
    parser.add_argument(
        "--body-timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="seconds a client may take to send a request body; slower ones get 408 and are dropped",
    )
    parser.add_argument(
        "--keep-alive-timeout",
        type=float,
        default=5.0,
        metavar="S",
        help="seconds an idle connection stays open between requests",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    parser.add_argument("--access-log", action="store_true", help="log every request")


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ImportError as exc:
        raise MissingDependencyError("uvicorn", "server", "rewardkit serve") from exc
    from rewardkit.scoring import Scorer
    from rewardkit.server.app import create_app
    from rewardkit.server.config import ServerConfig, is_loopback
    from rewardkit.server.serving import uvicorn_options

    spec = spec_from_args(args)  # before anything starts: a bad spec is one line
    assert spec is not None  # argparse requires --spec or --reward
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port must be within 1-65535, got {args.port}")
    if args.max_body_mb <= 0:
        raise ConfigError(f"--max-body-mb must be positive, got {args.max_body_mb}")
    token = args.token or os.environ.get(TOKEN_ENV) or None
    config = ServerConfig(
        token=token,
        max_batch=args.max_batch,
        max_body_bytes=int(args.max_body_mb * 2**20),
        batch_window_s=args.batch_window_ms / 1000,
        batch_max_samples=args.batch_max_samples,
        max_inflight_batches=args.max_inflight,
        fill_value=args.fill_value,
        header_timeout_s=args.header_timeout,
        body_timeout_s=args.body_timeout,
        keep_alive_timeout_s=args.keep_alive_timeout,
    )
    if not is_loopback(args.host) and token is None:
        print(
            f"rewardkit serve: warning: binding {args.host} without a token lets anyone who can "
            f"reach this machine use it; set ${TOKEN_ENV} or --token",
            file=sys.stderr,
        )
    with Scorer(spec) as scorer:
        app = create_app(scorer, config)
        # Workers start before the port opens: a trainer that sees the server up gets
        # warm workers, not a first batch that times out while Math-Verify imports.
        print("rewardkit serve: starting reward workers...", file=sys.stderr)
        scorer.warm_up()
        print(
            f"rewardkit serve: {', '.join(e.label for e in scorer.spec.rewards)} on "
            f"http://{args.host}:{args.port} (OpenRLHF: /get_reward, native: /v1/rewards)",
            file=sys.stderr,
        )
        uvicorn.run(
            app,
            host=args.host,
            port=args.port,
            log_level=args.log_level,
            access_log=args.access_log,
            **uvicorn_options(config),
        )
    return 0
