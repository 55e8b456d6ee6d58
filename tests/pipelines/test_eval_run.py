"""`rewardkit eval` runs: every judge kind, the k-curve's cost, and the output contract."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from rewardkit.backends.base import GenerateRequest
from rewardkit.backends.mock import MockBackend
from rewardkit.judges import JudgeConfig, JudgeQuery, Judgment, PointwiseJudge
from rewardkit.pipelines.eval import (
    ClassifierJudge,
    CostMeter,
    EvalItem,
    EvalSettings,
    LengthJudge,
    PairwiseEvalJudge,
    PointwiseEvalJudge,
    SpecJudge,
    load_items,
    run_eval,
)

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
_FENCED = re.compile(r"\[BEGIN RESPONSE (\d+) (\w+)\]\n(.*?)\n\[END RESPONSE \1 \2\]", re.S)


def shown(request: GenerateRequest) -> list[str]:
    return [m.group(3) for m in _FENCED.finditer(request.messages[-1]["content"])]


def noisy_content_judge(right: float) -> MockBackend:
    """Scores 'good' texts 8 and others 3, but swaps them in a `1 - right` share of samples
    (decided by a hash of the request seed and sample index: reproducible, cache-friendly)."""

    def answer(request: GenerateRequest, index: int) -> str:
        flip = (
            int(hashlib.sha256(f"{request.seed}/{index}".encode()).hexdigest(), 16) % 1000
            >= right * 1000
        )
        scores = [
            (3 if "good" in t else 8) if flip else (8 if "good" in t else 3) for t in shown(request)
        ]
        return "Analysis: ok.\nScores: \\boxed{" + ", ".join(map(str, scores)) + "}"

    return MockBackend(answer)


def pair_items(n: int, subset: str = "s") -> list[EvalItem]:
    return [
        EvalItem(
            f"q{i}",
            f"question {i}?",
            (f"a good answer {i}", f"a bad answer {i}"),
            (True, False),
            subset,
        )
        for i in range(n)
    ]


def run(items: Sequence[EvalItem], judge: Any, outdir: Path, **kw: Any) -> dict[str, Any]:
    return asyncio.run(
        run_eval(items, judge, outdir, EvalSettings(bootstrap=200, **kw), progress=False)
    )


def pointwise(backend: Any, k: int, meta_rm: Any = None) -> PointwiseEvalJudge:
    meter = CostMeter(backend)
    return PointwiseEvalJudge(PointwiseJudge(meter, JudgeConfig(samples=k), meta_rm), meter)


# -- the output contract -----------------------------------------------------------------------


def test_output_contract(tmp_path: Path) -> None:
    items = pair_items(12, "alpha") + pair_items(0)
    items += [
        EvalItem(f"b{i}", "q", ("a good one", "meh"), (True, False), "beta") for i in range(8)
    ]
    results = run(items, pointwise(noisy_content_judge(0.7), 4), tmp_path)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved == json.loads(json.dumps(results))
    assert saved["kind"] == "eval"
    for key in ("accuracy", "ties", "n", "ci", "subsets", "curve"):
        assert key in saved
    assert saved["n"] == 20 and 0 <= saved["ci"][0] <= saved["accuracy"] <= saved["ci"][1] <= 1
    assert set(saved["subsets"]) == {"alpha", "beta"}
    for sub in saved["subsets"].values():
        assert set(sub) >= {"accuracy", "n", "ci"}
    assert [p["k"] for p in saved["curve"]] == [1, 2, 4]
    for point in saved["curve"]:
        assert set(point) >= {"k", "voting", "requests", "tokens"}
        assert "meta_rm" not in point  # no meta RM given
    # The k_max point is the headline: all k_max draws, one subset.
    assert saved["curve"][-1]["voting"] == saved["accuracy"]
    rows = list(csv.DictReader((tmp_path / "curve.csv").open()))
    assert [int(r["k"]) for r in rows] == [1, 2, 4]
    assert float(rows[0]["voting"]) == saved["curve"][0]["voting"]
    assert {"curve.png", "subsets.png"} <= {p.name for p in tmp_path.iterdir()}
    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "alpha" in page
    lines = [json.loads(line) for line in (tmp_path / "items.jsonl").read_text().splitlines()]
    assert len(lines) == 20 and all(len(line["draws"]) == 4 for line in lines)


def test_curve_costs_the_requests_of_k_max_only(tmp_path: Path) -> None:
    backend = noisy_content_judge(0.7)
    results = run(pair_items(10), pointwise(backend, 8), tmp_path)
    by_k = {p["k"]: p for p in results["curve"]}
    # A pair: k=1 shows one order (1 request), k>=2 both orders (2 requests of n=k/2 each).
    assert {k: p["requests"] for k, p in by_k.items()} == {1: 10, 2: 20, 4: 20, 8: 20}
    assert backend.calls == results["cost"]["requests"] == by_k[8]["requests"]
    assert results["cost"]["samples"] == 80
    assert by_k[1]["completion_tokens"] * 8 == pytest.approx(by_k[8]["completion_tokens"], abs=8)


def test_voting_improves_with_k_for_a_better_than_chance_judge(tmp_path: Path) -> None:
    results = run(pair_items(40), pointwise(noisy_content_judge(0.7), 8), tmp_path)
    curve = {p["k"]: p["voting"] for p in results["curve"]}
    assert 0.6 <= curve[1] <= 0.8  # each sample is right ~70% of the time
    assert curve[8] > curve[1]


class CheatingMetaRM:
    """Rates a judgment high when it prefers the response saying 'good' (a perfect meta RM)."""

    async def rate(self, query: JudgeQuery, judgments: Sequence[Judgment]) -> list[float]:
        out = []
        for j in judgments:
            by_index = dict(zip(j.indices, j.scores or (), strict=False))
            good = next(i for i, r in enumerate(query.responses) if "good" in r)
            out.append(1.0 if by_index and by_index[good] == max(by_index.values()) else -1.0)
        return out


def test_meta_rm_curve_beats_plain_voting(tmp_path: Path) -> None:
    judge = pointwise(noisy_content_judge(0.55), 8, CheatingMetaRM())
    results = run(pair_items(30), judge, tmp_path)
    for point in results["curve"][1:]:
        assert point["meta_rm"] >= point["voting"]
        assert point["meta_keep"] == max(1, round(point["k"] / 2))
    # Keeping the best-rated half: the item is lost only when fewer than half the samples
    # were right and too few of them could be kept.
    assert results["curve"][-1]["meta_rm"] > results["curve"][-1]["voting"]


def test_pairwise_baseline_cancels_and_exposes_position_bias(tmp_path: Path) -> None:
    always_first = CostMeter(MockBackend(["Verdict: [[1]]"]))
    results = run(
        pair_items(6),
        PairwiseEvalJudge(always_first, JudgeConfig(samples=2), always_first),
        tmp_path / "a",
    )
    assert results["accuracy"] == 0.0 and results["ties"] == 1.0

    def by_content(request: GenerateRequest, index: int) -> str:
        texts = shown(request)
        return f"Verdict: [[{1 if 'good' in texts[0] else 2}]]"

    meter = CostMeter(MockBackend(by_content))
    results = run(
        pair_items(6), PairwiseEvalJudge(meter, JudgeConfig(samples=2), meter), tmp_path / "b"
    )
    assert results["accuracy"] == 1.0
    assert {p["k"]: p["requests"] for p in results["curve"]} == {1: 12, 2: 12}


def test_length_baseline_and_best_of_n(tmp_path: Path) -> None:
    items = [
        EvalItem("1", "q", ("long good answer", "bad"), (True, False)),
        EvalItem("2", "q", ("ok", "much longer bad answer"), (True, False)),
        EvalItem("3", "q", ("a", "bb", "ccc"), (False, False, True), rule="top"),
        EvalItem("4", "q", ("aa", "bb"), (True, False)),  # same length: a tie
    ]
    results = run(items, LengthJudge(), tmp_path)
    assert results["accuracy"] == 0.5 and results["ties"] == 0.25
    assert results["random"] == pytest.approx((0.5 + 0.5 + 1 / 3 + 0.5) / 4, abs=1e-4)
    assert results["curve"] == [{**results["curve"][0], "k": 1, "voting": 0.5}]


def test_rule_reward_spec_on_gsm8k_right_wrong_pairs(tmp_path: Path) -> None:
    from rewardkit.scoring import Scorer

    data = tmp_path / "gsm.jsonl"
    data.write_text(
        "".join(
            json.dumps({"question": f"{i}+{i}?", "answer": f"{i} and {i}\n#### {2 * i}"}) + "\n"
            for i in range(1, 7)
        )
    )
    items = load_items([str(data)]).items
    judge = SpecJudge(Scorer({"rewards": [{"reward": "math"}]}))
    results = run(items, judge, tmp_path / "out")
    assert results["accuracy"] == 1.0 and results["n"] == 6


@pytest.mark.shared
def test_rule_reward_on_real_gsm8k_pairs(tmp_path: Path) -> None:
    from rewardkit.scoring import Scorer

    path = SHARED / "gsm8k" / "test.jsonl"
    if not path.is_file():
        pytest.skip(f"shared data not found: {path}")
    items = load_items([str(path)], limit=30).items
    results = run(items, SpecJudge(Scorer({"rewards": [{"reward": "math"}]})), tmp_path)
    assert results["accuracy"] == 1.0  # gold solutions right, other problems' answers wrong


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny Llama sequence classifier and a tokenizer trained here (no download)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForSequenceClassification, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(
        ["a good answer", "a bad answer", "question?"] * 10,
        trainers.BpeTrainer(
            vocab_size=300,
            special_tokens=["<pad>", "<s>", "</s>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    tokenizer.chat_template = (
        "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}</s>{% endfor %}"
    )
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=128,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
    )
    path = tmp_path_factory.mktemp("tiny-rm")
    LlamaForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.mark.slow  # imports torch and transformers (about 20 s on a shared CPU)
def test_scalar_reward_model_scores_each_response_as_rewardbench_does(
    tmp_path: Path, tiny_classifier: Path
) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    items = pair_items(4)
    judge = ClassifierJudge(str(tiny_classifier), batch_size=3)
    results = run(items, judge, tmp_path)
    assert results["n"] == 4 and results["curve"][0]["requests"] == 8
    lines = [json.loads(line) for line in (tmp_path / "items.jsonl").read_text().splitlines()]
    # Reference: the model on the chat-templated (prompt, response), one text at a time.
    tokenizer = AutoTokenizer.from_pretrained(tiny_classifier)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_classifier).eval()
    for item, line in zip(items, lines, strict=True):
        for response, got in zip(item.responses, line["totals"], strict=True):
            text = tokenizer.apply_chat_template(
                [
                    {"role": "user", "content": item.prompt},
                    {"role": "assistant", "content": response},
                ],
                tokenize=False,
            )
            with torch.no_grad():
                want = model(**tokenizer(text, return_tensors="pt")).logits[0, 0].item()
            assert got == pytest.approx(want, abs=1e-4)
