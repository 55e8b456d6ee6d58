"""HTTPBackend against the fake OpenAI server on loopback: retries, timeouts, balancing.

Every test runs on both transports (the lean HTTP/1.1 client and aiohttp): the retry,
balancing and fallback behaviour above them must not depend on which carries the bytes.
"""

from __future__ import annotations

import asyncio
import email.utils
import pickle
import socket
import threading
import time

import pytest

from rewardkit.backends._wire import parse_logprobs
from rewardkit.backends.base import Constraint, GenerateRequest
from rewardkit.backends.http import HTTPBackend, _endpoint, _parse_retry_after
from rewardkit.errors import (
    BackendConnectionError,
    BackendError,
    BackendHTTPError,
    BackendTimeoutError,
    ConfigError,
)
from rewardkit.testing.fake_openai import FakeOpenAI, Fault

FAST = {"backoff_base": 0.01, "backoff_max": 0.05}


@pytest.fixture(autouse=True, params=["lean", "aiohttp"])
def transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Make `request.param` the default transport of every HTTPBackend built in the test."""
    defaults = dict(HTTPBackend.__init__.__kwdefaults__ or {})
    defaults["transport"] = request.param
    monkeypatch.setattr(HTTPBackend.__init__, "__kwdefaults__", defaults)
    assert HTTPBackend("http://127.0.0.1:9").transport == request.param
    return str(request.param)


def judge_request(n: int = 1, **kwargs: object) -> GenerateRequest:
    content = "Question: 1+1?\nResponse 1: 2\nResponse 2: 3"
    return GenerateRequest(messages=({"role": "user", "content": content},), n=n, **kwargs)  # type: ignore[arg-type]


def backend(server: FakeOpenAI, **kw: object) -> HTTPBackend:
    return HTTPBackend(server.base_url, model="judge", **{**FAST, **kw})  # type: ignore[arg-type]


async def test_n_completions_with_request_fields_sent(fake: FakeOpenAI) -> None:
    b = backend(fake)
    out = await b.generate(
        judge_request(n=3, temperature=0.7, max_tokens=64, seed=11, stop=("END",))
    )
    await b.aclose()
    assert len(out) == 3
    assert all("Scores: \\boxed{" in c.text and c.finish_reason == "stop" for c in out)
    assert fake.requests == 1
    body = fake.bodies[0]
    assert body["model"] == "judge" and body["n"] == 3 and body["seed"] == 11
    assert body["temperature"] == 0.7 and body["max_tokens"] == 64 and body["stop"] == ["END"]
    assert "logprobs" not in body and "guided_regex" not in body


@pytest.mark.parametrize(
    ("base", "endpoint"),
    [
        ("http://h:1/v1", "http://h:1/v1/chat/completions"),
        ("http://h:1/v1/", "http://h:1/v1/chat/completions"),
        ("http://h:1", "http://h:1/v1/chat/completions"),
        ("https://api.x.com/openai/v1", "https://api.x.com/openai/v1/chat/completions"),
        ("http://h:1/v1/chat/completions", "http://h:1/v1/chat/completions"),
    ],
)
def test_base_url_forms(base: str, endpoint: str) -> None:
    assert _endpoint(base) == endpoint


@pytest.mark.parametrize(
    "options",
    [
        {"base_url": "localhost:8000"},
        {"base_url": []},
        {"concurrency": 0},
        {"timeout": 0},
        {"max_retries": -1},
        {"balance": "random"},
        {"constraints": "maybe"},
        {"regex_fields": ("outlines",)},
    ],
)
def test_bad_options_raise_config_error(options: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        HTTPBackend(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "fault", [Fault.http(500), Fault.http(502), Fault.http(503), Fault.http(429)]
)
async def test_retries_server_errors_then_succeeds(fake: FakeOpenAI, fault: Fault) -> None:
    fake.script(fault, fault)
    b = backend(fake)
    out = await b.generate(judge_request())
    await b.aclose()
    assert len(out) == 1 and fake.requests == 3 and b.retries == 2


async def test_gives_up_after_max_retries_with_status(fake: FakeOpenAI) -> None:
    fake.always = Fault.http(503, message="overloaded")
    b = backend(fake, max_retries=3)
    with pytest.raises(BackendHTTPError, match="overloaded") as info:
        await b.generate(judge_request())
    await b.aclose()
    assert info.value.status == 503
    assert fake.requests == 4  # first try + 3 retries


async def test_retry_after_seconds_is_honoured(fake: FakeOpenAI) -> None:
    fake.script(Fault.http(429, retry_after=1))
    b = backend(fake)
    start = time.monotonic()
    await b.generate(judge_request())
    waited = time.monotonic() - start
    await b.aclose()
    assert fake.requests == 2
    assert 0.95 <= waited < 5.0  # backoff alone would be <= 0.05 s


async def test_retry_after_is_capped(fake: FakeOpenAI) -> None:
    fake.script(Fault.http(429, retry_after=3600))
    b = backend(fake, retry_after_max=0.2)
    start = time.monotonic()
    await b.generate(judge_request())
    await b.aclose()
    assert 0.15 <= time.monotonic() - start < 5.0


def test_parse_retry_after_forms() -> None:
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    past = email.utils.formatdate(time.time() - 30, usegmt=True)
    assert _parse_retry_after("2") == 2.0
    assert _parse_retry_after("0.5") == 0.5
    assert 28 <= (_parse_retry_after(future) or 0) <= 31
    assert _parse_retry_after(past) == 0.0
    assert _parse_retry_after("soon") is None
    assert _parse_retry_after(None) is None


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_no_retry_on_client_errors(fake: FakeOpenAI, status: int) -> None:
    fake.script(Fault.http(status, message=f"you did {status} wrong"))
    b = backend(fake)
    with pytest.raises(BackendHTTPError, match=f"you did {status} wrong") as info:
        await b.generate(judge_request())
    await b.aclose()
    assert info.value.status == status
    assert fake.requests == 1


async def test_hang_times_out_retries_then_raises_timeout(fake: FakeOpenAI) -> None:
    fake.always = Fault.hang()
    b = backend(fake, timeout=0.2, max_retries=2)
    start = time.monotonic()
    with pytest.raises(BackendTimeoutError, match=r"0\.2 s"):
        await b.generate(judge_request())
    elapsed = time.monotonic() - start
    await b.aclose()
    assert fake.requests == 3
    assert 0.55 <= elapsed < 10.0


async def test_one_hang_then_success(fake: FakeOpenAI) -> None:
    fake.script(Fault.hang())
    b = backend(fake, timeout=0.2)
    out = await b.generate(judge_request(n=2))
    await b.aclose()
    assert len(out) == 2 and fake.requests == 2


@pytest.mark.parametrize("kind", ["garbage", "empty_choices"])
async def test_garbage_bodies_are_retried(fake: FakeOpenAI, kind: str) -> None:
    fake.script(Fault(kind), Fault(kind))  # type: ignore[arg-type]
    b = backend(fake)
    assert len(await b.generate(judge_request())) == 1
    await b.aclose()
    assert fake.requests == 3


async def test_persistent_garbage_raises_backend_error(fake: FakeOpenAI) -> None:
    fake.always = Fault("garbage")
    b = backend(fake, max_retries=1)
    with pytest.raises(BackendError, match="invalid response body"):
        await b.generate(judge_request())
    await b.aclose()
    assert fake.requests == 2


async def test_dropped_connections_retry_then_raise_connection_error(fake: FakeOpenAI) -> None:
    fake.always = Fault("disconnect")
    b = backend(fake, max_retries=2)
    with pytest.raises(BackendConnectionError):
        await b.generate(judge_request())
    await b.aclose()
    assert fake.requests == 3


async def test_refused_connection_raises_connection_error() -> None:
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    b = HTTPBackend(f"http://127.0.0.1:{port}/v1", max_retries=1, **FAST)  # type: ignore[arg-type]
    with pytest.raises(BackendConnectionError, match="cannot reach"):
        await b.generate(judge_request())
    await b.aclose()
    assert b.attempts == 2


async def test_short_n_is_topped_up_one_at_a_time_with_distinct_seeds() -> None:
    async with FakeOpenAI(ignore_n=True) as server:
        b = backend(server)
        out = await b.generate(judge_request(n=4, seed=100))
        await b.aclose()
    assert len(out) == 4
    assert b.server_ignores_n
    assert server.requests == 4
    assert sorted(body["seed"] for body in server.bodies) == [100, 101, 102, 103]
    assert [body["n"] for body in server.bodies[1:]] == [1, 1, 1]


async def test_capped_n_asks_again_for_the_rest() -> None:
    async with FakeOpenAI(max_n=3) as server:
        b = backend(server)
        out = await b.generate(judge_request(n=5))
        await b.aclose()
    assert len(out) == 5 and not b.server_ignores_n
    assert [body["n"] for body in server.bodies] == [5, 2]
    assert "seed" not in server.bodies[1]  # unseeded requests stay unseeded


async def test_round_robin_spreads_evenly(fake: FakeOpenAI, fake2: FakeOpenAI) -> None:
    b = HTTPBackend([fake.base_url, fake2.base_url], **FAST)  # type: ignore[arg-type]
    await asyncio.gather(*(b.generate(judge_request()) for _ in range(10)))
    await b.aclose()
    assert (fake.requests, fake2.requests) == (5, 5)


async def test_retry_moves_to_the_other_server(fake: FakeOpenAI, fake2: FakeOpenAI) -> None:
    fake.always = Fault.http(500)
    b = HTTPBackend([fake.base_url, fake2.base_url], **FAST)  # type: ignore[arg-type]
    assert len(await b.generate(judge_request())) == 1
    await b.aclose()
    assert (fake.requests, fake2.requests) == (1, 1)


async def test_least_in_flight_favours_the_fast_server() -> None:
    async with FakeOpenAI(delay=0.15) as slow, FakeOpenAI() as fast:
        b = HTTPBackend([slow.base_url, fast.base_url], balance="least_in_flight", **FAST)  # type: ignore[arg-type]

        async def worker() -> None:
            for _ in range(6):
                await b.generate(judge_request())

        await asyncio.gather(*(worker() for _ in range(2)))
        await b.aclose()
    assert slow.requests + fast.requests == 12
    # Round-robin would send 6 to each; least-in-flight measured 3 slow / 9 fast here.
    assert slow.requests <= 4


async def test_concurrency_bound_is_honoured() -> None:
    async with FakeOpenAI(delay=0.05) as server:
        b = backend(server, concurrency=4)
        await asyncio.gather(*(b.generate(judge_request()) for _ in range(24)))
        await b.aclose()
    assert server.requests == 24
    assert server.max_in_flight == 4


@pytest.mark.parametrize(
    ("constraint", "fields"),
    [
        (
            Constraint("regex", r"Scores: \\boxed\{\d+\}"),
            {
                "structured_outputs": {"regex": r"Scores: \\boxed\{\d+\}"},
                "guided_regex": r"Scores: \\boxed\{\d+\}",
            },
        ),
        (Constraint("grammar", 'root ::= "7"'), {"grammar": 'root ::= "7"'}),
        (
            Constraint("json_schema", '{"type": "object"}'),
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {
                        "name": "judgment",
                        "schema": {"type": "object"},
                        "strict": True,
                    },
                }
            },
        ),
    ],
)
async def test_constraints_map_to_server_fields(
    fake: FakeOpenAI, constraint: Constraint, fields: dict[str, object]
) -> None:
    b = backend(fake)
    await b.generate(judge_request(constraint=constraint))
    await b.aclose()
    sent = {
        k: v
        for k, v in fake.bodies[0].items()
        if k in fields or k in {"grammar", "guided_regex", "structured_outputs", "response_format"}
    }
    assert sent == fields


async def test_rejected_constraint_field_is_dropped_and_remembered() -> None:
    regex = Constraint("regex", r"\d+")
    async with FakeOpenAI(reject_fields=["guided_regex"]) as server:
        b = backend(server)
        await b.generate(judge_request(constraint=regex))
        await b.generate(judge_request(constraint=regex))
        await b.aclose()
    assert server.requests == 3  # one 400, then two accepted
    assert b.rejected_fields == {"guided_regex"}
    assert [("guided_regex" in body) for body in server.bodies] == [True, False, False]
    assert all(body["structured_outputs"] == {"regex": r"\d+"} for body in server.bodies)
    assert b.retries == 0  # a fallback is not a retry


async def test_constraint_mode_send_raises_and_off_sends_nothing() -> None:
    regex = Constraint("regex", r"\d+")
    async with FakeOpenAI(reject_fields=["guided_regex"]) as server:
        strict = backend(server, constraints="send")
        with pytest.raises(BackendHTTPError, match="guided_regex") as info:
            await strict.generate(judge_request(constraint=regex))
        assert info.value.status == 400
        off = backend(server, constraints="off")
        await off.generate(judge_request(constraint=regex))
        await strict.aclose()
        await off.aclose()
    assert "structured_outputs" not in server.bodies[-1]


async def test_regex_fields_option_chooses_fields(fake: FakeOpenAI) -> None:
    b = backend(fake, regex_fields=("guided_regex",))
    await b.generate(judge_request(constraint=Constraint("regex", "x")))
    await b.aclose()
    assert fake.bodies[0]["guided_regex"] == "x" and "structured_outputs" not in fake.bodies[0]


async def test_logprobs_requested_and_parsed(fake: FakeOpenAI) -> None:
    b = backend(fake)
    out = await b.generate(judge_request(n=2, top_logprobs=3))
    await b.aclose()
    assert fake.bodies[0]["logprobs"] is True and fake.bodies[0]["top_logprobs"] == 3
    for completion in out:
        assert completion.logprobs is not None
        assert "".join(t.token for t in completion.logprobs) == completion.text
        assert all(len(t.top) == 3 and t.token in t.top for t in completion.logprobs)
        assert all(t.logprob < 0 for t in completion.logprobs)


def test_legacy_logprobs_shape_parses() -> None:
    parsed = parse_logprobs(
        {
            "tokens": ["7", "!"],
            "token_logprobs": [-0.5, None],
            "top_logprobs": [{"7": -0.5, "8": -1.5}, None],
        }
    )
    assert parsed is not None
    assert [(t.token, t.top) for t in parsed] == [("7", {"7": -0.5, "8": -1.5}), ("!", {})]
    assert parsed[0].logprob == -0.5 and parsed[1].logprob == float("-inf")
    assert parse_logprobs(None) is None


async def test_extra_body_is_merged(fake: FakeOpenAI) -> None:
    b = backend(fake, extra_body={"chat_template_kwargs": {"enable_thinking": False}})
    await b.generate(judge_request())
    await b.aclose()
    assert fake.bodies[0]["chat_template_kwargs"] == {"enable_thinking": False}


async def test_api_key_from_env_is_sent_and_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-123")
    async with FakeOpenAI(api_key="sk-secret-123") as server:
        good = backend(server)
        assert len(await good.generate(judge_request())) == 1
        wrong = backend(server, api_key="sk-wrong-456")
        with pytest.raises(BackendHTTPError) as info:
            await wrong.generate(judge_request())
        await good.aclose()
        await wrong.aclose()
    assert info.value.status == 401 and server.requests == 2
    assert "sk-" not in str(info.value) and "sk-" not in repr(good)


async def test_pickle_drops_session_and_clone_works(fake: FakeOpenAI) -> None:
    b = backend(fake)
    await b.generate(judge_request())
    clone = pickle.loads(pickle.dumps(b))
    assert len(clone._states) == 0
    assert len(await clone.generate(judge_request(n=2))) == 2
    await b.aclose()
    await clone.aclose()
    assert fake.requests == 2


def test_one_session_per_event_loop() -> None:
    # Trainers call asyncio.run per batch: each new loop must get its own session.
    server = FakeOpenAI()
    with server.run_in_thread():
        b = HTTPBackend(server.base_url, **FAST)  # type: ignore[arg-type]

        async def twice() -> int:
            await b.generate(judge_request())
            first = b._state().lean or b._state().session
            await b.generate(judge_request())
            same = (b._state().lean or b._state().session) is first
            await b.aclose()
            return int(same and first is not None)

        assert asyncio.run(twice()) == 1
        assert asyncio.run(twice()) == 1
        results: list[int] = []
        thread = threading.Thread(target=lambda: results.append(asyncio.run(twice())))
        thread.start()
        thread.join()
        assert results == [1]
    assert server.requests == 6


async def test_every_rejected_constraint_field_falls_back_once() -> None:
    regex = Constraint("regex", r"\d+")
    async with FakeOpenAI(reject_fields=["guided_regex", "structured_outputs"]) as server:
        b = backend(server)
        assert len(await b.generate(judge_request(constraint=regex))) == 1
        await b.aclose()
    assert server.requests == 3
    assert b.rejected_fields == {"guided_regex", "structured_outputs.regex"}
    assert not {"guided_regex", "structured_outputs"} & set(server.bodies[-1])


async def test_json_schema_downgrades_to_llama_cpp_form_on_a_500_naming_it() -> None:
    # Measured: llama-cpp-python's server answers response_format json_schema with a 500
    # whose message names response_format; it accepts {"type": "json_object", "schema"}.
    schema = {"type": "object", "properties": {"score": {"type": "integer"}}}
    constraint = Constraint("json_schema", schema)
    async with FakeOpenAI(
        reject_fields=["response_format.type=json_schema"], reject_status=500
    ) as server:
        b = backend(server)
        await b.generate(judge_request(constraint=constraint))
        await b.generate(judge_request(constraint=constraint))
        await b.aclose()
    assert server.requests == 3 and b.retries == 0
    formats = [body["response_format"]["type"] for body in server.bodies]
    assert formats == ["json_schema", "json_object", "json_object"]
    assert server.bodies[-1]["response_format"]["schema"] == schema


async def test_a_400_not_naming_a_sent_field_is_raised() -> None:
    async with FakeOpenAI(faults=[Fault.http(400, message="context length exceeded")]) as server:
        b = backend(server)
        with pytest.raises(BackendHTTPError, match="context length"):
            await b.generate(judge_request(constraint=Constraint("grammar", "root ::= x")))
        await b.aclose()
    assert server.requests == 1 and b.rejected_fields == set()
