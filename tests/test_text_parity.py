"""One sample, one reward, whichever way it reaches rewardkit.

The same samples go through `rewardkit score`, both `rewardkit serve` endpoints (OpenRLHF's
`/get_reward` with a chat-templated query, the native `/v1/rewards`), the TRL reward
functions (standard and conversational), verl's `compute_score` and its batch form, and
OpenRLHF's `reward_func`. The spec holds rules whose value depends on the prompt and
response text (language consistency against the prompt's language, the think format,
math against a reference) and a probe whose value is a hash of the exact prompt and
response text it saw: any difference in extraction shows up as a different number.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest

from rewardkit.cli.main import main
from rewardkit.registry import register_reward
from rewardkit.reward import Reward
from rewardkit.scoring import Scorer
from rewardkit.types import RewardResult, Sample, Score


def text_hash(prompt: str, response: str) -> float:
    digest = hashlib.sha256(f"{prompt}\x00{response}".encode()).digest()
    return int.from_bytes(digest[:6], "big") / 2**48


@register_reward("text_parity_probe")
class TextProbe(Reward):
    """A number in [0, 1) derived from the exact prompt and response text it is given."""

    name: ClassVar[str] = "probe"
    value_range: ClassVar[tuple[float, float] | None] = (0.0, 1.0)

    def score(self, sample: Sample) -> RewardResult:
        return Score(text_hash(sample.prompt, sample.response))


SPEC: dict[str, Any] = {
    "rewards": [
        {"reward": "text_parity_probe", "name": "probe"},
        {"reward": "language_consistency"},
        {"reward": "think_format"},
        {"reward": "math"},
    ],
}
LABELS = ["probe", "language_consistency", "think_format", "math"]

IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
EN_SYSTEM = (
    "A conversation between User and Assistant. The assistant first thinks about the "
    "reasoning process in the mind and then provides the user with the answer."
)


@dataclass(frozen=True)
class Case:
    name: str
    prompt: str | list[dict[str, Any]]
    response: str
    reference: str
    #: The prompt text every path must hand the rewards (rewardkit.text's rule).
    expected_prompt: str


CASES = [
    Case(
        "plain",
        "What is 2+3?",
        "<think>2 plus 3 is 5</think>The answer is \\boxed{5}.",
        "5",
        "What is 2+3?",
    ),
    Case(
        "chat: system left out",
        [
            {"role": "system", "content": EN_SYSTEM},
            {"role": "user", "content": "请问 2+3 等于多少？"},
        ],
        "<think>二加三等于五，所以答案是五</think>答案是 \\boxed{5}",
        "5",
        "请问 2+3 等于多少？",
    ),
    Case(
        "multimodal",
        [
            {
                "role": "user",
                "content": [IMAGE, {"type": "text", "text": "Wie viele Katzen sind auf dem Bild?"}],
            }
        ],
        "<think>Ich sehe zwei Katzen auf dem Bild</think>Es sind \\boxed{2} Katzen.",
        "2",
        "Wie viele Katzen sind auf dem Bild?",
    ),
    Case(
        "system-only",
        [{"role": "system", "content": "Réponds en français : combien font deux plus deux ?"}],
        "<think>deux plus deux font quatre</think>La réponse est \\boxed{4}.",
        "4",
        "Réponds en français : combien font deux plus deux ?",
    ),
    Case(
        "multi-turn",
        [
            {"role": "user", "content": "What is 2+2?"},
            {"role": "assistant", "content": "4"},
            {"role": "user", "content": "And times 3?"},
        ],
        "<think>four times three is twelve</think>\\boxed{12}",
        "12",
        "User: What is 2+2?\n\nAssistant: 4\n\nUser: And times 3?",
    ),
    Case("no think", "Compute 6*7.", "The answer is \\boxed{42}.", "42", "Compute 6*7."),
    Case(
        "unterminated think",
        "What is 10-3?",
        "<think>ten minus three is seven, so \\boxed{7}",
        "7",
        "What is 10-3?",
    ),
    Case(
        "second </think> after a decoy answer",
        "What is 9-4?",
        "<think>nine minus four</think>\\boxed{6}</think>\\boxed{5}",
        "5",
        "What is 9-4?",
    ),
]


# --- how each trainer renders a sample --------------------------------------------------

QWEN_DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."


def chatml(prompt: str | list[dict[str, Any]]) -> str:
    """The prompt as Qwen2-VL's chat template renders it (what OpenRLHF sends), or raw text."""
    if isinstance(prompt, str):
        return prompt  # a dataset without a chat template: the prompt goes in as is
    messages = prompt
    if messages[0]["role"] != "system":
        messages = [{"role": "system", "content": QWEN_DEFAULT_SYSTEM}, *messages]
    out = []
    for message in messages:
        content = message["content"]
        if isinstance(content, list):
            content = "".join(
                "<|vision_start|><|image_pad|><|image_pad|><|vision_end|>"
                if part["type"] != "text"
                else part["text"]
                for part in content
            )
        out.append(f"<|im_start|>{message['role']}\n{content}<|im_end|>\n")
    return "".join(out) + "<|im_start|>assistant\n"


def conversational(prompt: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt


Outcome = tuple[float | None, dict[str, float]]  # (combined reward or None, component values)


def from_details(reward: float | None, details: Mapping[str, Any]) -> Outcome:
    # Paths that must give a number (verl, OpenRLHF) write 0.0 for an unscored component,
    # so components compare as value-or-0.0; `reward` keeps None for an unscored sample.
    return reward, {label: float(details.get(label, {}).get("score") or 0.0) for label in LABELS}


# --- the paths ----------------------------------------------------------------------------


def via_cli(tmp_path: Path, cases: Sequence[Case]) -> list[Outcome]:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC), encoding="utf-8")
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    rows = [
        {"id": str(i), "prompt": c.prompt, "response": c.response, "reference": c.reference}
        for i, c in enumerate(cases)
    ]
    src.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    assert main(["score", str(src), "-o", str(out), "--spec", str(spec), "--no-progress"]) == 0
    lines = {
        line["id"]: line for line in map(json.loads, out.read_text(encoding="utf-8").splitlines())
    }
    return [
        from_details(lines[str(i)]["reward"], lines[str(i)]["details"]) for i in range(len(cases))
    ]


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from rewardkit.server import ServerConfig, create_app

    scorer = Scorer(SPEC)
    with TestClient(create_app(scorer, ServerConfig())) as test_client:
        yield test_client
    scorer.close()


def via_native(client: Any, cases: Sequence[Case]) -> list[Outcome]:
    samples = [
        {"prompt": c.prompt, "response": c.response, "reference": c.reference} for c in cases
    ]
    reply = client.post("/v1/rewards", json={"samples": samples})
    assert reply.status_code == 200, reply.text
    return [from_details(r["reward"], r["details"]) for r in reply.json()["results"]]


def from_openrlhf(payload: Mapping[str, Any], n: int) -> list[Outcome]:
    def values(v: Any) -> list[float]:
        return [float(x) for x in (v.tolist() if hasattr(v, "tolist") else v)]

    logs = {key: values(v) for key, v in payload["extra_logs"].items()}
    rewards = values(payload["rewards"])
    return [
        (
            None if logs["rewardkit/unscored"][i] else rewards[i],
            {label: logs[f"rewardkit/{label}"][i] for label in LABELS},
        )
        for i in range(n)
    ]


def openrlhf_batch(cases: Sequence[Case]) -> dict[str, list[Any]]:
    prompts = [chatml(c.prompt) for c in cases]
    # OpenRLHF decodes prompt + response with special tokens: the end-of-turn token follows.
    end = ["<|im_end|>" if isinstance(c.prompt, list) else "</s>" for c in cases]
    return {
        "query": [p + c.response + e for p, c, e in zip(prompts, cases, end, strict=True)],
        "prompts": prompts,
        "labels": [c.reference for c in cases],
    }


def via_get_reward(client: Any, cases: Sequence[Case]) -> list[Outcome]:
    reply = client.post("/get_reward", json=openrlhf_batch(cases))
    assert reply.status_code == 200, reply.text
    return from_openrlhf(reply.json(), len(cases))


def via_openrlhf(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cases: Sequence[Case]
) -> list[Outcome]:
    from rewardkit.integrations.openrlhf import reward_func

    spec = tmp_path / "openrlhf_spec.json"
    spec.write_text(json.dumps(SPEC), encoding="utf-8")
    monkeypatch.setenv("REWARDKIT_SPEC", str(spec))
    batch = openrlhf_batch(cases)
    return from_openrlhf(reward_func(batch["query"], batch["prompts"], batch["labels"]), len(cases))


def trl_call(
    func: Any, prompts: list[Any], completions: list[Any], references: list[str]
) -> list[Any]:
    """TRL's exact call: prompts, completions, completion_ids, every column, trainer hooks."""
    return func(
        prompts=prompts,
        completions=completions,
        completion_ids=[[1, 2, 3]] * len(completions),
        trainer_state=object(),
        log_metric=lambda name, value: None,
        log_extra=lambda column, values: None,
        reference=references,
    )


def via_trl(cases: Sequence[Case], *, conversation: bool) -> list[Outcome]:
    from rewardkit.integrations.trl import reward_funcs

    if conversation:
        prompts: list[Any] = [conversational(c.prompt) for c in cases]
        completions: list[Any] = [[{"role": "assistant", "content": c.response}] for c in cases]
    else:
        prompts = [c.prompt for c in cases]
        completions = [c.response for c in cases]
    references = [c.reference for c in cases]
    [combined] = reward_funcs(spec=SPEC)
    rewards = trl_call(combined, prompts, completions, references)
    per_reward = {
        f.__name__: trl_call(f, prompts, completions, references)
        for f in reward_funcs(spec=SPEC, mode="per_reward")
    }
    return [
        (rewards[i], {label: float(per_reward[label][i] or 0.0) for label in LABELS})
        for i in range(len(cases))
    ]


def verl_outcome(out: Mapping[str, Any]) -> Outcome:
    return (
        None if out["unscored"] else out["score"],
        {label: out[f"{label}_score"] for label in LABELS},
    )


def verl_extra(i: int, case: Case) -> dict[str, Any]:
    return {"index": i, "prompt": case.prompt}


def via_verl(cases: Sequence[Case]) -> list[Outcome]:
    from rewardkit.integrations.verl import compute_score

    return [
        verl_outcome(compute_score("parity", c.response, c.reference, verl_extra(i, c), spec=SPEC))
        for i, c in enumerate(cases)
    ]


def via_verl_batch(cases: Sequence[Case]) -> list[Outcome]:
    from rewardkit.integrations.verl import compute_score_batch

    outs = compute_score_batch(
        ["parity"] * len(cases),
        [c.response for c in cases],
        [c.reference for c in cases],
        [verl_extra(i, c) for i, c in enumerate(cases)],
        spec=SPEC,
    )
    return [verl_outcome(out) for out in outs]


def same(got: Outcome, want: Outcome) -> bool:
    """Equal outcomes; float32 tensors (OpenRLHF) carry about 7 significant digits."""
    if (got[0] is None) != (want[0] is None):
        return False
    close = pytest.approx(want[0], rel=1e-6) == got[0] if want[0] is not None else True
    return close and got[1] == pytest.approx(want[1], rel=1e-6)


# --- the test -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def expected() -> list[Outcome]:
    """What the spec gives each sample scored directly, with the text the rule prescribes."""
    scorer = Scorer(SPEC)
    try:
        samples = [
            Sample(prompt=c.expected_prompt, response=c.response, reference=c.reference)
            for c in CASES
        ]
        reports = scorer.score(samples)
    finally:
        scorer.close()
    return [from_details(r.reward, r.details()) for r in reports]


def test_every_path_gives_the_same_rewards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, client: Any, expected: list[Outcome]
) -> None:
    plain = [c for c in CASES if isinstance(c.prompt, str)]
    plain_expected = [e for c, e in zip(CASES, expected, strict=True) if isinstance(c.prompt, str)]
    paths = {
        "rewardkit score": via_cli(tmp_path, CASES),
        "serve /v1/rewards": via_native(client, CASES),
        "serve /get_reward (OpenRLHF, ChatML)": via_get_reward(client, CASES),
        "OpenRLHF reward_func": via_openrlhf(tmp_path, monkeypatch, CASES),
        "TRL conversational": via_trl(CASES, conversation=True),
        "verl compute_score": via_verl(CASES),
        "verl compute_score_batch": via_verl_batch(CASES),
    }
    paths["TRL standard"] = via_trl(plain, conversation=False)
    for path, outcomes in paths.items():
        cases, wanted = (plain, plain_expected) if path == "TRL standard" else (CASES, expected)
        for case, got, want in zip(cases, outcomes, wanted, strict=True):
            assert same(got, want), f"{path} differs on {case.name!r}: {got} != {want}"


def test_the_rule_is_visible_in_the_rewards(expected: list[Outcome]) -> None:
    """The expected outcomes are not vacuous: the rule decides real reward values."""
    by_name = {c.name: outcome for c, outcome in zip(CASES, expected, strict=True)}
    # The Chinese question, not the English system prompt, sets the target language.
    assert by_name["chat: system left out"][1]["language_consistency"] == 1.0
    # The only instruction of a system-only prompt is its prompt text: French, not ''.
    assert by_name["system-only"][1]["language_consistency"] == 1.0
    # Multimodal content gives its text (German), not a Python repr of the parts.
    assert by_name["multimodal"][1]["language_consistency"] == 1.0
    # The answer follows the last </think>: the decoy before it does not count.
    assert by_name["second </think> after a decoy answer"][1]["math"] == 1.0
    # A model still thinking has not answered: a \boxed{} inside the open think earns nothing.
    assert by_name["unterminated think"][1]["math"] == 0.0
    assert by_name["no think"][1]["think_format"] == 0.0
    for case, (_, components) in zip(CASES, expected, strict=True):
        assert components["probe"] == text_hash(case.expected_prompt, case.response)


def test_a_system_prompt_would_have_changed_the_language_target() -> None:
    """Why system turns are left out: with them, the target language flips to English."""
    [case] = [c for c in CASES if c.name == "chat: system left out"]
    scorer = Scorer({"rewards": [{"reward": "language_consistency"}]})
    try:
        with_system = f"System: {EN_SYSTEM}\n\nUser: {case.expected_prompt}"
        [report] = scorer.score([Sample(prompt=with_system, response=case.response)])
    finally:
        scorer.close()
    assert report.components["language_consistency"].details["target"] == "en"
