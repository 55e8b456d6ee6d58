"""`rewardkit rewards`: list what `--reward NAME` and specs accept."""

from __future__ import annotations

import argparse

from rewardkit.registry import available_rewards


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no options


def run(args: argparse.Namespace) -> int:
    del args
    for name in available_rewards():
        print(name)
    return 0
