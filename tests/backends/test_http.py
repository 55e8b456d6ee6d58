"""HTTPBackend's own logic on scripted responses (no sockets): retries, backoff,
Retry-After, 4xx, short-n top-up, timeouts, balancing, constraint fallback, the response
cap. The few tests that need real connections are in test_http_sockets.py.
"""

from __future__ import annotations

import asyncio
import email.utils
import time

import pytest

from rewardkit.backends import HTTPRequest, HTTPResponse, MockTransport
from rewardkit.backends._wire import parse_logprobs
from rewardkit.backends.base import Constraint, GenerateRequest
from rewardkit.backends.http import HTTPBackend, _endpoint, _parse_retry_after
from rewardkit.backends.scripted import FAST_RETRIES as FAST
from rewardkit.backends.scripted import ScriptedServer, route
from rewardkit.errors import (
    BackendConnectionError,
    BackendError,
    BackendHTTPError,
    BackendTimeoutError,
    ConfigError,
)
from rewardkit.testing.fake_openai import Fault


def judge_request(n: int = 1, **kwargs: object) -> GenerateRequest:
    content = "Question: 1+1?\nResponse 1: 2\nResponse 2: 3"
    return GenerateRequest(messages=({"role": "user", "content": content},), n=n, **kwargs)  # type: ignore[arg-type]


async def test_the_documented_scripted_server_example() -> None:
    """docs/judge-servers.md's example, through the public `rewardkit.backends` names."""
    from rewardkit.backends import GenerateRequest, HTTPBackend, ScriptedServer
    from rewardkit.testing import Fault

    server = ScriptedServer(faults=[Fault.http(503), Fault("disconnect")])
    backend = server.backend()
    request = GenerateRequest(messages=({"role": "user", "content": "Response 1: 4"},), n=2)
    completions = await backend.generate(request)
    assert len(completions) == 2 and len(server.requests) == 3

    def handler(request: HTTPRequest) -> HTTPResponse:
        return HTTPResponse.from_json({"choices": [{"message": {"content": "Scores: \\boxed{7}"}}]})

    backend = HTTPBackend("http://judge.test/v1", model="m", transport=MockTransport(handler))
    [completion] = await backend.generate(GenerateRequest(messages=request.messages))
    assert completion.text == "Scores: \\boxed{7}"
    await backend.aclose()


async def test_n_completions_with_request_fields_sent(scripted: ScriptedServer) -> None:
    b = scripted.backend(timeout=7)
    out = await b.generate(
        judge_request(n=3, temperature=0.7, max_tokens=64, seed=11, stop=("END",))
    )
    await b.aclose()
    assert len(out) == 3
    assert all("Scores: \\boxed{" in c.text and c.finish_reason == "stop" for c in out)
    [request] = scripted.requests
    assert (request.method, request.url) == ("POST", "http://judge.test/v1/chat/completions")
    assert request.headers["Content-Type"] == "application/json" and request.timeout == 7
    body = scripted.bodies[0]
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
    ("options", "message"),
    [
        ({"base_url": "localhost:8000"}, "base_url must look like"),
        ({"base_url": []}, "at least one base_url"),
        ({"concurrency": 0}, "concurrency"),
        ({"timeout": 0}, "timeout"),
        ({"max_retries": -1}, "max_retries"),
        ({"balance": "random"}, "balance"),
        ({"constraints": "maybe"}, "constraints"),
        ({"regex_fields": ("outlines",)}, "regex_fields"),
        ({"max_response_bytes": 0}, "max_response_bytes"),
        ({"transport": "lean"}, "transport='lean' was removed"),
        ({"transport": "grpc"}, "transport must be"),
        ({"transport": object()}, "async send"),
    ],
)
def test_bad_options_raise_config_error(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        HTTPBackend(**options)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("transport", ["auto", "aiohttp"])
def test_transport_names_kept_for_old_configs(transport: str) -> None:
    b = HTTPBackend("https://api.example/v1", transport=transport)  # type: ignore[arg-type]
    assert b.transport == transport and type(b._transport).__name__ == "AiohttpTransport"


@pytest.mark.parametrize(
    "fault", [Fault.http(500), Fault.http(502), Fault.http(503), Fault.http(429)]
)
async def test_retries_server_errors_then_succeeds(fault: Fault) -> None:
    server = ScriptedServer(faults=[fault, fault])
    b = server.backend()
    out = await b.generate(judge_request())
    assert len(out) == 1 and len(server.requests) == 3 and b.retries == 2


async def test_gives_up_after_max_retries_with_status() -> None:
    server = ScriptedServer(always=Fault.http(503, message="overloaded"))
    b = server.backend(max_retries=3)
    with pytest.raises(BackendHTTPError, match="overloaded") as info:
        await b.generate(judge_request())
    assert info.value.status == 503
    assert len(server.requests) == 4  # first try + 3 retries


async def test_retry_after_seconds_is_honoured() -> None:
    server = ScriptedServer(faults=[Fault.http(429, retry_after=0.4)])
    b = server.backend()
    start = time.monotonic()
    await b.generate(judge_request())
    waited = time.monotonic() - start
    assert len(server.requests) == 2
    assert 0.38 <= waited < 5.0  # backoff alone would be <= 0.05 s


async def test_retry_after_header_case_does_not_matter() -> None:
    late = HTTPResponse.from_json({"error": {"message": "slow down"}}, 429, {"retry-after": "0.3"})
    answers = [late]
    server = ScriptedServer()

    async def handler(request: HTTPRequest) -> HTTPResponse:
        return answers.pop() if answers else await server(request)

    b = HTTPBackend("http://judge.test/v1", transport=MockTransport(handler), **FAST)  # type: ignore[arg-type]
    start = time.monotonic()
    await b.generate(judge_request())
    assert time.monotonic() - start >= 0.28


async def test_retry_after_is_capped() -> None:
    server = ScriptedServer(faults=[Fault.http(429, retry_after=3600)])
    b = server.backend(retry_after_max=0.2)
    start = time.monotonic()
    await b.generate(judge_request())
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


def test_backoff_is_full_jitter_capped() -> None:
    b = HTTPBackend("http://h:1/v1", backoff_base=0.5, backoff_max=4.0)
    waits = [b._wait(retry, None) for retry in (1, 2, 3, 10) for _ in range(200)]
    assert all(0.0 <= w <= 4.0 for w in waits)
    assert max(b._wait(1, None) for _ in range(200)) <= 0.5  # first retry: [0, base]
    assert max(waits) > 2.0  # later retries reach up to the cap


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_no_retry_on_client_errors(status: int) -> None:
    server = ScriptedServer(faults=[Fault.http(status, message=f"you did {status} wrong")])
    b = server.backend()
    with pytest.raises(BackendHTTPError, match=f"you did {status} wrong") as info:
        await b.generate(judge_request())
    assert info.value.status == status
    assert len(server.requests) == 1


async def test_hang_times_out_retries_then_raises_timeout() -> None:
    server = ScriptedServer(always=Fault.hang())
    b = server.backend(timeout=0.05, max_retries=2)
    start = time.monotonic()
    with pytest.raises(BackendTimeoutError, match=r"within 0\.05 s"):
        await b.generate(judge_request())
    assert len(server.requests) == 3 and b.retries == 2
    assert 0.14 <= time.monotonic() - start < 5.0


async def test_one_hang_then_success() -> None:
    server = ScriptedServer(faults=[Fault.hang()])
    b = server.backend(timeout=0.05)
    out = await b.generate(judge_request(n=2))
    assert len(out) == 2 and len(server.requests) == 2


@pytest.mark.parametrize("kind", ["garbage", "empty_choices"])
async def test_garbage_bodies_are_retried(kind: str) -> None:
    server = ScriptedServer(faults=[Fault(kind), Fault(kind)])  # type: ignore[arg-type]
    b = server.backend()
    assert len(await b.generate(judge_request())) == 1
    assert len(server.requests) == 3


async def test_persistent_garbage_raises_backend_error() -> None:
    server = ScriptedServer(always=Fault("garbage"))
    b = server.backend(max_retries=1)
    with pytest.raises(BackendError, match="invalid response body"):
        await b.generate(judge_request())
    assert len(server.requests) == 2


async def test_dropped_connections_retry_then_raise_connection_error() -> None:
    server = ScriptedServer(always=Fault("disconnect"))
    b = server.backend(max_retries=2)
    with pytest.raises(BackendConnectionError, match=r"cannot reach http://judge\.test"):
        await b.generate(judge_request())
    assert len(server.requests) == 3


async def test_an_oversized_answer_is_an_error_and_not_retried() -> None:
    # A hostile or broken server answering megabytes: the cap stops it, once, by name.
    server = ScriptedServer(reply="x" * 5000)
    b = HTTPBackend(
        "http://judge.test/v1",
        transport=MockTransport(server, max_response_bytes=4096),
        **FAST,  # type: ignore[arg-type]
    )
    with pytest.raises(BackendError, match="max_response_bytes=4096") as info:
        await b.generate(judge_request())
    assert type(info.value) is BackendError
    assert len(server.requests) == 1 and b.retries == 0


async def test_short_n_is_topped_up_one_at_a_time_with_distinct_seeds() -> None:
    server = ScriptedServer(ignore_n=True)
    b = server.backend()
    out = await b.generate(judge_request(n=4, seed=100))
    assert len(out) == 4
    assert b.server_ignores_n
    assert len(server.requests) == 4
    assert sorted(body["seed"] for body in server.bodies) == [100, 101, 102, 103]
    assert [body["n"] for body in server.bodies[1:]] == [1, 1, 1]


async def test_capped_n_asks_again_for_the_rest() -> None:
    server = ScriptedServer(max_n=3)
    b = server.backend()
    out = await b.generate(judge_request(n=5))
    assert len(out) == 5 and not b.server_ignores_n
    assert [body["n"] for body in server.bodies] == [5, 2]
    assert "seed" not in server.bodies[1]  # unseeded requests stay unseeded


def two_servers(**kw: object) -> tuple[ScriptedServer, ScriptedServer, HTTPBackend]:
    one, two = ScriptedServer(), ScriptedServer()
    b = HTTPBackend(
        ["http://one.test/v1", "http://two.test/v1"],
        transport=route({"one.test": one, "two.test": two}),
        **{**FAST, **kw},  # type: ignore[arg-type]
    )
    return one, two, b


async def test_round_robin_spreads_evenly() -> None:
    one, two, b = two_servers()
    await asyncio.gather(*(b.generate(judge_request()) for _ in range(10)))
    assert (len(one.requests), len(two.requests)) == (5, 5)


async def test_retry_moves_to_the_other_server() -> None:
    one, two, b = two_servers()
    one.always = Fault.http(500)
    assert len(await b.generate(judge_request())) == 1
    assert (len(one.requests), len(two.requests)) == (1, 1)


async def test_least_in_flight_favours_the_fast_server() -> None:
    slow, fast, b = two_servers(balance="least_in_flight")
    slow.delay = 0.1

    async def worker() -> None:
        for _ in range(6):
            await b.generate(judge_request())

    await asyncio.gather(*(worker() for _ in range(2)))
    assert len(slow.requests) + len(fast.requests) == 12
    # Round-robin would send 6 to each; least-in-flight measured 3 slow / 9 fast here.
    assert len(slow.requests) <= 4


async def test_concurrency_bound_is_honoured() -> None:
    server = ScriptedServer(delay=0.02)
    b = server.backend(concurrency=4)
    await asyncio.gather(*(b.generate(judge_request()) for _ in range(24)))
    assert len(server.requests) == 24
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
    constraint: Constraint, fields: dict[str, object]
) -> None:
    server = ScriptedServer()
    b = server.backend(server_kind="generic")
    await b.generate(judge_request(constraint=constraint))
    sent = {
        k: v
        for k, v in server.bodies[0].items()
        if k in fields or k in {"grammar", "guided_regex", "structured_outputs", "response_format"}
    }
    assert sent == fields


async def test_rejected_constraint_field_is_dropped_and_remembered() -> None:
    regex = Constraint("regex", r"\d+")
    server = ScriptedServer(reject_fields=["guided_regex"])
    b = server.backend(server_kind="generic")
    await b.generate(judge_request(constraint=regex))
    await b.generate(judge_request(constraint=regex))
    assert len(server.requests) == 3  # one 400, then two accepted
    assert b.rejected_fields == {"guided_regex"}
    assert [("guided_regex" in body) for body in server.bodies] == [True, False, False]
    assert all(body["structured_outputs"] == {"regex": r"\d+"} for body in server.bodies)
    assert b.retries == 0  # a fallback is not a retry


async def test_constraint_mode_send_raises_and_off_sends_nothing() -> None:
    regex = Constraint("regex", r"\d+")
    server = ScriptedServer(reject_fields=["guided_regex"])
    strict = server.backend(constraints="send", server_kind="generic")
    with pytest.raises(BackendHTTPError, match="guided_regex") as info:
        await strict.generate(judge_request(constraint=regex))
    assert info.value.status == 400
    off = server.backend(constraints="off")
    await off.generate(judge_request(constraint=regex))
    assert "structured_outputs" not in server.bodies[-1]
    assert all(r.method == "POST" for r in server.requests)  # "off" never asks the kind


async def test_regex_fields_option_chooses_fields() -> None:
    server = ScriptedServer()
    b = server.backend(regex_fields=("guided_regex",), server_kind="generic")
    await b.generate(judge_request(constraint=Constraint("regex", "x")))
    assert server.bodies[0]["guided_regex"] == "x" and "structured_outputs" not in server.bodies[0]


async def test_auto_server_kind_asks_through_the_same_transport() -> None:
    # Detection is a GET through the backend's own transport: a mock answers it too.
    seen: list[tuple[str, str]] = []
    server = ScriptedServer()

    async def handler(request: HTTPRequest) -> HTTPResponse:
        seen.append((request.method, request.url))
        if request.url.endswith("/v1/models"):
            return HTTPResponse.from_json({"data": [{"id": "j", "owned_by": "llamacpp"}]})
        return await server(request)

    b = HTTPBackend("http://judge.test/v1", api_key="sk-k", transport=MockTransport(handler))
    await b.generate(
        judge_request(
            constraint=Constraint("regex", r"\d", (Constraint("grammar", "root ::= [0-9]"),))
        )
    )
    assert seen[0] == ("GET", "http://judge.test/v1/models")
    assert b.dialect is not None and b.dialect.name == "llama_cpp"
    assert server.bodies[0]["grammar"] == "root ::= [0-9]"


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


async def test_extra_body_is_merged() -> None:
    server = ScriptedServer()
    b = server.backend(extra_body={"chat_template_kwargs": {"enable_thinking": False}})
    await b.generate(judge_request())
    assert server.bodies[0]["chat_template_kwargs"] == {"enable_thinking": False}


async def test_api_key_from_env_is_sent_and_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-123")
    server = ScriptedServer(api_key="sk-secret-123")
    good = server.backend()
    assert len(await good.generate(judge_request())) == 1
    wrong = server.backend(api_key="sk-wrong-456")
    with pytest.raises(BackendHTTPError) as info:
        await wrong.generate(judge_request())
    assert info.value.status == 401 and len(server.requests) == 2
    assert server.requests[0].headers["Authorization"] == "Bearer sk-secret-123"
    assert "sk-" not in str(info.value) and "sk-" not in repr(good)


async def test_every_rejected_constraint_field_falls_back_once() -> None:
    regex = Constraint("regex", r"\d+")
    server = ScriptedServer(reject_fields=["guided_regex", "structured_outputs"])
    b = server.backend(server_kind="generic")
    assert len(await b.generate(judge_request(constraint=regex))) == 1
    assert len(server.requests) == 3
    assert b.rejected_fields == {"guided_regex", "structured_outputs.regex"}
    assert not {"guided_regex", "structured_outputs"} & set(server.bodies[-1])


async def test_json_schema_downgrades_to_llama_cpp_form_on_a_500_naming_it() -> None:
    # Measured: llama-cpp-python's server answers response_format json_schema with a 500
    # whose message names response_format; it accepts {"type": "json_object", "schema"}.
    schema = {"type": "object", "properties": {"score": {"type": "integer"}}}
    constraint = Constraint("json_schema", schema)
    server = ScriptedServer(reject_fields=["response_format.type=json_schema"], reject_status=500)
    b = server.backend(server_kind="generic")
    await b.generate(judge_request(constraint=constraint))
    await b.generate(judge_request(constraint=constraint))
    assert len(server.requests) == 3 and b.retries == 0
    formats = [body["response_format"]["type"] for body in server.bodies]
    assert formats == ["json_schema", "json_object", "json_object"]
    assert server.bodies[-1]["response_format"]["schema"] == schema


async def test_a_400_not_naming_a_sent_field_is_raised() -> None:
    server = ScriptedServer(faults=[Fault.http(400, message="context length exceeded")])
    b = server.backend(server_kind="generic")
    with pytest.raises(BackendHTTPError, match="context length"):
        await b.generate(judge_request(constraint=Constraint("grammar", "root ::= x")))
    assert len(server.requests) == 1 and b.rejected_fields == set()


async def test_aclose_closes_a_given_transport() -> None:
    server = ScriptedServer()
    transport = server.transport()
    b = HTTPBackend("http://judge.test/v1", transport=transport)
    await b.generate(judge_request())
    await b.aclose()
    assert transport.closed


async def test_constraint_fields_follow_a_rejection_and_a_detected_dialect() -> None:
    # The fields of a constraint are worked out once per constraint; a rejection or a
    # newly known dialect must still change what is sent.
    regex = Constraint("regex", r"\d+", (Constraint("grammar", "root ::= [0-9]+"),))
    server = ScriptedServer(reject_fields=["guided_regex"])
    b = server.backend(server_kind="generic")
    await b.generate(judge_request(constraint=regex))
    await b.generate(judge_request(constraint=regex))
    assert ["guided_regex" in body for body in server.bodies] == [True, False, False]
    from rewardkit.backends.dialects import dialect_for

    b.dialect = dialect_for("llama_cpp")
    await b.generate(judge_request(constraint=regex))
    assert server.bodies[-1]["grammar"] == "root ::= [0-9]+"
    assert "structured_outputs" not in server.bodies[-1]
