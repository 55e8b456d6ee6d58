"""Bodies a hostile or broken client sends: lone surrogates anywhere, bodies parsed off the loop."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from rewardkit.scoring import Scorer
from rewardkit.server import ServerConfig, create_app

# A JSON `\ud800` escape decodes to a lone surrogate: not Unicode text, it cannot be
# encoded as UTF-8 (the response, the result store, a judge request would all fail on it).
LONE = "\\ud800"
LONE_BODIES = [
    ("/get_reward", f'{{"query": ["a{LONE}"], "labels": ["a"]}}'),
    ("/get_reward", f'{{"query": ["a"], "labels": ["{LONE}"]}}'),
    ("/get_reward", f'{{"query": ["a"], "labels": [{{"answer": "{LONE}"}}]}}'),
    ("/get_reward", '{"query": ["a"], "prompts": ["\\udc00 trailing half"]}'),
    ("/get_reward", f'{{"query": ["a"], "datasources": ["gsm{LONE}"]}}'),
    ("/v1/rewards", f'{{"samples": [{{"id": "{LONE}", "response": "a", "reference": "a"}}]}}'),
    ("/v1/rewards", f'{{"samples": [{{"response": "a{LONE}b", "reference": "a"}}]}}'),
    ("/v1/rewards", f'{{"samples": [{{"responses": ["a", "{LONE}"], "reference": "a"}}]}}'),
    ("/v1/rewards", f'{{"samples": [{{"prompt": "{LONE}", "response": "a", "reference": "a"}}]}}'),
    ("/v1/rewards", f'{{"samples": [{{"response": "a", "reference": "{LONE}"}}]}}'),
    (
        "/v1/rewards",
        f'{{"samples": [{{"response": "a", "reference": "a", "meta": {{"{LONE}": 1}}}}]}}',
    ),
]


@pytest.mark.parametrize(("path", "body"), LONE_BODIES)
def test_lone_surrogate_is_a_clear_422(exact_scorer: Scorer, path: str, body: str) -> None:
    c = TestClient(create_app(exact_scorer, ServerConfig()), raise_server_exceptions=False)
    resp = c.post(path, content=body.encode(), headers={"content-type": "application/json"})
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"] == "invalid_request"
    message = resp.json()["message"]
    assert "not valid JSON" in message and "lone surrogate" in message and "column" in message
    assert exact_scorer.calls == []  # type: ignore[attr-defined]


def test_surrogate_pairs_are_text_and_echo_back(exact_scorer: Scorer) -> None:
    c = TestClient(create_app(exact_scorer, ServerConfig()))
    smile = "\\ud83d\\ude00"  # one character, 😀, as JSON escapes it
    native = f'{{"samples": [{{"id": "{smile}", "response": "{smile}", "reference": "😀"}}]}}'
    resp = c.post(
        "/v1/rewards", content=native.encode(), headers={"content-type": "application/json"}
    )
    assert resp.status_code == 200
    assert resp.json()["results"][0]["id"] == "😀"
    assert resp.json()["results"][0]["reward"] == 1.0
    openrlhf = f'{{"query": ["{smile}</s>"], "labels": ["😀"]}}'
    resp = c.post(
        "/get_reward", content=openrlhf.encode(), headers={"content-type": "application/json"}
    )
    assert resp.json()["rewards"] == [1.0]


def test_openapi_still_documents_the_request_bodies(exact_scorer: Scorer) -> None:
    # The endpoints parse their bodies themselves (in a thread): the schema must still say what to send.
    schema = TestClient(create_app(exact_scorer, ServerConfig())).get("/openapi.json").json()
    components = schema["components"]["schemas"]
    for path, model in (("/get_reward", "GetRewardRequest"), ("/v1/rewards", "RewardsRequest")):
        body = schema["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": f"#/components/schemas/{model}"}
        assert model in components
    assert "NativeSample" in components  # nested models are listed too
    assert components["GetRewardRequest"]["required"] == ["query"]
