"""The judge run's GC setting is scoped: a caller's collector is as it was afterwards."""

from __future__ import annotations

import gc

import pytest

from rewardkit.pipelines.judge_file import _long_lived_objects_frozen


def test_gc_is_frozen_and_relaxed_only_inside_the_run() -> None:
    before = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    with _long_lived_objects_frozen():
        assert gc.get_freeze_count() > 0  # what was built before the run is left alone
        assert gc.get_threshold()[0] >= 20_000
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_gc_is_restored_when_the_run_fails() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), _long_lived_objects_frozen():
        raise RuntimeError("judge crashed")
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
