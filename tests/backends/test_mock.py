"""MockBackend: the scripted double other engineers' tests build on."""

from __future__ import annotations

import pickle

import pytest

from rewardkit.backends import MockBackend
from rewardkit.backends.base import Backend, Completion, GenerateRequest, TokenLogprob
from rewardkit.errors import BackendHTTPError, BackendTimeoutError, ConfigError


def _req(n: int = 1, content: str = "q") -> GenerateRequest:
    return GenerateRequest(messages=({"role": "user", "content": content},), n=n)


async def test_list_outputs_are_consumed_in_order_across_calls_and_cycle() -> None:
    backend = MockBackend(["a", "b", "c"])
    first = await backend.generate(_req(n=2))
    second = await backend.generate(_req(n=2))
    assert [c.text for c in first] == ["a", "b"]
    assert [c.text for c in second] == ["c", "a"]
    assert all(c.finish_reason == "stop" for c in first + second)


async def test_callable_gets_request_and_sample_index() -> None:
    backend = MockBackend(lambda req, i: f"{req.messages[-1]['content']}#{i}", model="m1")
    out = await backend.generate(_req(n=3, content="hello"))
    assert [c.text for c in out] == ["hello#0", "hello#1", "hello#2"]
    assert backend.model == "m1"


async def test_requests_are_recorded_in_call_order() -> None:
    backend = MockBackend(["x"])
    r1, r2 = _req(content="one"), _req(n=2, content="two")
    await backend.generate(r1)
    await backend.generate(r2)
    assert backend.requests == [r1, r2]
    assert backend.calls == 2


@pytest.mark.parametrize(
    "error", [BackendHTTPError(500, "boom"), BackendTimeoutError("slow"), ValueError("odd")]
)
async def test_scripted_errors_are_raised_then_later_items_answer(error: Exception) -> None:
    backend = MockBackend([error, "ok"])
    with pytest.raises(type(error)):
        await backend.generate(_req())
    assert [c.text for c in await backend.generate(_req())] == ["ok"]


async def test_completion_items_pass_through_with_logprobs() -> None:
    completion = Completion("7", "length", (TokenLogprob("7", -0.1, {"7": -0.1, "8": -2.3}),))
    backend = MockBackend([completion])
    assert await backend.generate(_req()) == [completion]


async def test_aclose_marks_closed_and_satisfies_protocol() -> None:
    backend = MockBackend(["x"])
    assert isinstance(backend, Backend)
    await backend.aclose()
    assert backend.closed


@pytest.mark.parametrize("outputs", [[], [1], [None]])
def test_bad_outputs_raise_config_error(outputs: list[object]) -> None:
    with pytest.raises(ConfigError):
        MockBackend(outputs)  # type: ignore[arg-type]


async def test_list_backend_pickles_with_its_script() -> None:
    backend = MockBackend(["a", "b"], model="pickled")
    clone = pickle.loads(pickle.dumps(backend))
    assert clone.model == "pickled"
    assert [c.text for c in await clone.generate(_req(n=2))] == ["a", "b"]
