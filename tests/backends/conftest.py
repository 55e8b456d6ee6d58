"""Fixtures for backend tests: a scripted judge server behind a `MockTransport` (no
sockets, for the unit tests) and fake OpenAI servers on loopback (for the few end-to-end
tests that exercise real connections)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from rewardkit.backends import ScriptedServer
from rewardkit.testing.fake_openai import FakeOpenAI


@pytest.fixture
def scripted() -> ScriptedServer:
    return ScriptedServer()


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


@pytest.fixture
async def fake2() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server
