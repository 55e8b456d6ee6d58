"""`rewardkit report OUTDIR... -o report.html`: one self-contained HTML page (tables and
PNGs inlined) for result folders of `rewardkit eval`, `rewardkit eval probes` and any other
command whose folder holds a results.json with a "kind"."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rewardkit.errors import ConfigError

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "folders", nargs="+", metavar="OUTDIR", help="result folders (results.json)"
    )
    parser.add_argument(
        "-o", "--output", default="report.html", help="HTML file (default report.html)"
    )


def run(args: argparse.Namespace) -> int:
    from rewardkit.pipelines.eval.report import write_report

    output = Path(args.output)
    if output.is_dir():
        raise ConfigError(f"-o {output} is a folder; give an .html file path")
    path = write_report([Path(f) for f in args.folders], output)
    print(f"rewardkit report: {len(args.folders)} result folder(s) -> {path}", file=sys.stderr)
    return 0
