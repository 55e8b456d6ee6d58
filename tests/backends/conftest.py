"""Fixtures for backend tests: fake OpenAI servers on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from rewardkit.testing.fake_openai import FakeOpenAI


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


@pytest.fixture
async def fake2() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server
