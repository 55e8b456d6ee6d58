"""The fake OpenAI server itself: what other engineers' tests and benchmarks rely on."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

import pytest

from rewardkit.testing import (
    FakeOpenAI,
    FakeOpenAIProcess,
    Fault,
    count_responses,
    spct_reply,
    spct_text,
)


def post(
    base_url: str, body: dict[str, object], headers: dict[str, str] | None = None
) -> tuple[int, dict[str, object], dict[str, str]]:
    request = urllib.request.Request(
        base_url + "/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read()), dict(err.headers)


def chat(content: str, **extra: object) -> dict[str, object]:
    return {"model": "m", "messages": [{"role": "user", "content": content}], **extra}


@pytest.mark.parametrize(
    ("prompt", "count"),
    [
        ("no responses here", 1),
        ("[Response 1]\na\n[Response 2]\nb", 2),
        ("Response #1 ... response #2 ... RESPONSE #3", 3),
        ("Response 2 only", 2),
        ("Response 99999 is not a count", 1),
    ],
)
def test_count_responses(prompt: str, count: int) -> None:
    assert (
        count_responses(
            [{"role": "system", "content": "Response 7"}, {"role": "user", "content": prompt}]
        )
        == count
    )


def test_spct_reply_is_a_valid_verdict_sized_to_the_prompt() -> None:
    body = chat("Question\nResponse 1: x\nResponse 2: y\nResponse 3: z")
    texts = [spct_reply(body, i) for i in range(4)]
    for text in texts:
        match = re.search(r"Scores: \\boxed\{([^}]*)\}\s*$", text)
        assert match, text
        scores = [int(s) for s in match.group(1).split(", ")]
        assert len(scores) == 3 and all(1 <= s <= 10 for s in scores)
    assert texts[0] == spct_reply(body, 0)  # deterministic
    assert len(set(texts)) > 1  # samples differ by index
    assert spct_text([7, 3]).endswith("Scores: \\boxed{7, 3}")


@pytest.mark.parametrize(
    ("spec", "fault"),
    [
        ("500", Fault.http(500)),
        ("429:2", Fault.http(429, retry_after="2")),
        ("hang", Fault.hang()),
        ("hang:1.5", Fault.hang(1.5)),
        ("delay:0.2", Fault.delay(0.2)),
        ("garbage", Fault("garbage")),
        ("disconnect", Fault("disconnect")),
    ],
)
def test_fault_specs_parse(spec: str, fault: Fault) -> None:
    assert Fault.parse(spec) == fault


def test_bad_fault_spec() -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        Fault.parse("explode")


def test_thread_mode_answers_scripts_faults_and_counts() -> None:
    server = FakeOpenAI(
        reply=lambda body, i: f"choice {i} of {body['n']}", faults=[Fault.http(429, retry_after=3)]
    )
    with server.run_in_thread():
        status, body, headers = post(server.base_url, chat("hi", n=2))
        assert status == 429 and headers["Retry-After"] == "3"
        assert "fake 429" in json.dumps(body)
        status, body, _ = post(server.base_url, chat("hi", n=2))
        assert status == 200
        assert [c["message"]["content"] for c in body["choices"]] == [
            "choice 0 of 2",
            "choice 1 of 2",
        ]  # type: ignore[attr-defined,index]
        assert body["usage"]["total_tokens"] >= 0  # type: ignore[index]
    assert server.stats() == {"requests": 2, "completed": 1, "in_flight": 0, "max_in_flight": 1}
    assert [b["n"] for b in server.bodies] == [2, 2]


def test_ignore_n_reject_fields_and_api_key() -> None:
    server = FakeOpenAI(reply="fixed", ignore_n=True, reject_fields=["guided_regex"], api_key="k1")
    with server.run_in_thread():
        auth = {"Authorization": "Bearer k1"}
        assert post(server.base_url, chat("x", n=4))[0] == 401
        status, body, _ = post(server.base_url, chat("x", n=4), auth)
        assert status == 200 and len(body["choices"]) == 1  # type: ignore[arg-type]
        status, body, _ = post(server.base_url, chat("x", guided_regex="a"), auth)
        assert status == 400 and "guided_regex" in body["error"]["message"]  # type: ignore[index]
        assert post(server.base_url, {"model": "m"}, auth)[0] == 400  # no messages


def test_logprobs_shape() -> None:
    server = FakeOpenAI(reply="Scores: \\boxed{7}")
    with server.run_in_thread():
        _, body, _ = post(server.base_url, chat("x", logprobs=True, top_logprobs=2))
    content = body["choices"][0]["logprobs"]["content"]  # type: ignore[index]
    assert "".join(t["token"] for t in content) == "Scores: \\boxed{7}"
    assert all(
        len(t["top_logprobs"]) == 2 and t["top_logprobs"][0]["token"] == t["token"] for t in content
    )


def test_subprocess_mode_with_cli_flags() -> None:
    with FakeOpenAIProcess("--reply", "Scores: \\boxed{5}", "--fault", "503", "--ignore-n") as proc:
        assert proc.base_url.startswith("http://127.0.0.1:")
        assert post(proc.base_url, chat("x"))[0] == 503
        status, body, _ = post(proc.base_url, chat("x", n=3))
        assert status == 200 and [c["message"]["content"] for c in body["choices"]] == [
            "Scores: \\boxed{5}"
        ]  # type: ignore[attr-defined,index]
        with urllib.request.urlopen(proc.base_url.removesuffix("/v1") + "/stats") as response:
            assert json.loads(response.read())["requests"] == 2
    assert proc.proc.returncode is not None


def test_testing_package_exports_resolve() -> None:
    import rewardkit.testing as testing

    assert testing.__all__ == sorted(testing.__all__)
    for name in testing.__all__:
        assert getattr(testing, name).__module__ == testing._LAZY[name]
    with pytest.raises(AttributeError):
        _ = testing.Nope  # type: ignore[attr-defined]


# -- one behaviour, two carriers -----------------------------------------------------------

SAME_SCRIPT: list[tuple[dict[str, object], dict[str, object], int]] = [
    ({"faults": [Fault.http(429, retry_after=2, message="slow down")]}, chat("hi"), 429),
    ({"faults": [Fault("garbage")]}, chat("hi"), 200),
    ({"faults": [Fault("empty_choices")]}, chat("hi"), 200),
    ({"reject_fields": ["guided_regex"]}, chat("hi", guided_regex="x"), 400),
    ({"api_key": "sk-1"}, chat("hi"), 401),
    ({"ignore_n": True}, chat("Response 1 a Response 2 b", n=3), 200),
    ({"kind": "openai"}, chat("hi", grammar="root ::= x"), 400),
    ({}, {"no": "messages"}, 400),
    ({}, chat("Response 1 a", n=2, logprobs=True, top_logprobs=2), 200),
]


@pytest.mark.parametrize(("options", "body", "status"), SAME_SCRIPT)
async def test_the_fake_server_and_the_scripted_transport_answer_alike(
    options: dict[str, object], body: dict[str, object], status: int
) -> None:
    """FakeOpenAI (sockets) and ScriptedServer (MockTransport) share one ChatScript: the
    same options and request give the same status, Retry-After and body."""
    import aiohttp

    from rewardkit.backends import HTTPRequest, ScriptedServer

    def comparable(status: int, raw: bytes, retry_after: str | None) -> tuple[object, ...]:
        try:
            parsed = json.loads(raw)
        except ValueError:
            return status, raw, retry_after
        if isinstance(parsed, dict):
            for volatile in ("id", "created"):
                parsed.pop(volatile, None)
        return status, parsed, retry_after

    content = json.dumps(body).encode()
    request = HTTPRequest("POST", "http://judge.test/v1/chat/completions", content)
    scripted = await ScriptedServer(**options).transport().send(request)  # type: ignore[arg-type]
    async with (
        FakeOpenAI(**options) as server,  # type: ignore[arg-type]
        aiohttp.ClientSession() as session,
        session.post(server.base_url + "/chat/completions", data=content) as response,
    ):
        over_sockets = comparable(
            response.status, await response.read(), response.headers.get("Retry-After")
        )
    assert over_sockets[0] == status
    assert comparable(scripted.status, scripted.content, scripted.header("Retry-After")) == (
        over_sockets
    )
