"""verl's own code (0.7.1 - 0.9.1) driving rewardkit: its Hydra config, `get_custom_reward_fn`, reward loop.

Nothing from verl is copied here: the documented override lists are read from
docs/integrations.md, composed against the `ppo_trainer` config shipped in the installed
verl, and the resulting config goes through verl's `get_custom_reward_fn` and its
`RewardLoopWorker` (naive, dapo and rewardkit's `GroupRewardManager`) over a `DataProto`.
Not covered (GPU/cluster only): Ray actors, vLLM rollouts, training.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

verl = pytest.importorskip(
    "verl", reason="verl is not installed (CI: pip install --no-deps verl==0.9.1, see .ci/run)"
)
pytest.importorskip("hydra", reason="verl's config needs hydra-core")
reward_loop = pytest.importorskip(
    "verl.experimental.reward_loop.reward_loop",
    reason="verl's reward loop (ray, tensordict, codetiming) is not importable",
)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import rewardkit.integrations.verl as rk_verl  # noqa: E402

DOCS = Path(__file__).resolve().parents[2] / "docs" / "integrations.md"
SPEC_PLACEHOLDER = "/abs/path/reward_spec.yaml"
N = 4  # rollouts per prompt in these tests


def documented_overrides(function_name: str) -> list[str]:
    """The Hydra overrides of the docs' `main_ppo` command that uses `function_name`."""
    blocks = re.findall(r"```bash\n(.*?)```", DOCS.read_text(), re.S)
    found = []
    for block in blocks:
        tokens = shlex.split(block.replace("\\\n", " "))
        if "verl.trainer.main_ppo" not in tokens:
            continue
        overrides = tokens[tokens.index("verl.trainer.main_ppo") + 1 :]
        if f"reward.custom_reward_function.name={function_name}" in overrides:
            found.append(overrides)
    assert len(found) == 1, f"expected one documented main_ppo command using {function_name}"
    return found[0]


def compose(overrides: list[str]) -> Any:
    """verl's `ppo_trainer` config with these overrides, as `python -m verl.trainer.main_ppo` builds it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    config_dir = Path(verl.__file__).parent / "trainer" / "config"
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        return hydra_compose(config_name="ppo_trainer", overrides=overrides)


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers")
    from rewardkit.testing.grpo_toy import build_tiny_model

    out = tmp_path_factory.mktemp("tiny")
    build_tiny_model(out)
    return out


def config_for(
    function_name: str, spec: Path, tokenizer_dir: Path, *extra: str, rollout_n: int = N
) -> Any:
    overrides = [
        o.replace(SPEC_PLACEHOLDER, str(spec)) for o in documented_overrides(function_name)
    ]
    # test-only: a local tokenizer instead of the documented hub model, and our group size
    overrides += [
        f"actor_rollout_ref.model.path={tokenizer_dir}",
        f"actor_rollout_ref.rollout.n={rollout_n}",
        *extra,
    ]
    return compose(overrides)


def rollouts(tokenizer: Any, rows: list[tuple[str, str, str, str]]) -> Any:
    """A DataProto as verl's agent loop hands it to the reward loop: (uid, prompt, response, truth)."""
    from verl import DataProto

    prompt_len, response_len = 6, 6
    prompts, responses, masks = [], [], []
    for _, prompt, response, _ in rows:
        p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"][-prompt_len:]
        r_ids = tokenizer(response, add_special_tokens=False)["input_ids"][:response_len]
        pad = tokenizer.pad_token_id
        prompts.append([pad] * (prompt_len - len(p_ids)) + p_ids)  # left-padded prompt
        responses.append(r_ids + [pad] * (response_len - len(r_ids)))  # right-padded response
        masks.append(
            [0] * (prompt_len - len(p_ids))
            + [1] * len(p_ids)
            + [1] * len(r_ids)
            + [0] * (response_len - len(r_ids))
        )
    prompt_t, response_t = torch.tensor(prompts), torch.tensor(responses)
    return DataProto.from_dict(
        tensors={
            "prompts": prompt_t,
            "responses": response_t,
            "input_ids": torch.cat([prompt_t, response_t], dim=1),
            "attention_mask": torch.tensor(masks),
        },
        non_tensors={
            "uid": np.array([r[0] for r in rows], dtype=object),
            "data_source": np.array(["gsm8k"] * len(rows), dtype=object),
            "reward_model": np.array([{"ground_truth": r[3]} for r in rows], dtype=object),
            "extra_info": np.array(
                [{"question": r[1], "index": i} for i, r in enumerate(rows)], dtype=object
            ),
        },
    )


def run_reward_loop(config: Any, data: Any) -> list[dict[str, Any]]:
    """verl's RewardLoopWorker (the class Ray runs as an actor) over the batch."""

    async def run() -> list[dict[str, Any]]:
        # built inside the loop, as in a Ray async actor: its managers keep that loop
        worker = reward_loop.RewardLoopWorker(config)
        return await worker.compute_score_batch(data)

    return asyncio.run(run())


ROWS = [
    ("u1", "say the digit 7", "7", "7"),
    ("u1", "say the digit 7", "3 4", "7"),
    ("u2", "say the digit 5", "the 5", "5"),
    ("u2", "say the digit 5", "6", "5"),
]


@pytest.fixture
def contains_spec(tmp_path: Path) -> Path:
    spec = tmp_path / "spec.yaml"
    spec.write_text("rewards:\n  - reward: h2_contains\n    weight: 2\n")
    return spec


def test_documented_config_loads_rewardkits_function(
    contains_spec: Path, tokenizer_dir: Path
) -> None:
    from verl.trainer.ppo.reward import get_custom_reward_fn

    for name in ("compute_score", "compute_score_batch"):
        config = config_for(name, contains_spec, tokenizer_dir)
        fn = get_custom_reward_fn(config)
        assert fn is not None, "verl did not pick up the documented custom_reward_function"
        raw, reward_kwargs = fn.args  # verl's partial(_call_with_kwargs, raw_fn, reward_kwargs)
        assert raw is getattr(rk_verl, name)  # pkg:// imports the installed module by name
        assert reward_kwargs == {"spec": str(contains_spec)}


def test_legacy_top_level_keys_reach_verl_only_through_a_migration(contains_spec: Path) -> None:
    """Why the docs changed: the pre-0.7 keys still compose, but verl reads `reward.*` only.

    verl 0.7 and 0.8's `main_ppo` migrate the old keys into `reward.*`; 0.9's does not
    (only its fully-async entry point does), so there they are silently ignored.
    """
    import importlib.util

    from verl.trainer.ppo.reward import get_custom_reward_fn

    config = compose(
        [
            "custom_reward_function.path=pkg://rewardkit.integrations.verl",
            "custom_reward_function.name=compute_score",
        ]
    )
    assert get_custom_reward_fn(config) is None  # verl would fall back to its own scorer
    main_ppo = importlib.util.find_spec("verl.trainer.main_ppo")
    assert main_ppo is not None and main_ppo.origin is not None
    migrates = "migrate_legacy_reward_impl" in Path(main_ppo.origin).read_text()
    assert migrates == (verl_version() < (0, 9))


def verl_version() -> tuple[int, int]:
    major, minor = re.match(r"(\d+)\.(\d+)", verl.__version__).groups()  # type: ignore[union-attr]
    return int(major), int(minor)


def test_batch_reward_manager_is_gone_from_the_reward_loop() -> None:
    from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls

    with pytest.raises(ValueError, match="Unknown reward manager: batch"):
        get_reward_manager_cls("batch")


@pytest.mark.parametrize(
    ("manager", "function_name"),
    [
        ("naive", "compute_score"),
        ("naive", "compute_score_async"),
        ("dapo", "compute_score"),
        ("dapo", "compute_score_async"),
    ],
)
def test_reward_loop_per_sample_managers(
    contains_spec: Path, tokenizer_dir: Path, manager: str, function_name: str
) -> None:
    from verl.utils import hf_tokenizer

    overrides = [f"reward.custom_reward_function.name={function_name}"]
    if manager != "naive":
        overrides.append(f"reward.reward_manager.name={manager}")
    config = config_for("compute_score", contains_spec, tokenizer_dir, *overrides)
    data = rollouts(hf_tokenizer(str(tokenizer_dir)), ROWS)
    out = run_reward_loop(config, data)
    assert [o["reward_score"] for o in out] == [2.0, 0.0, 2.0, 0.0]
    for o in out:  # rewardkit's dict reaches verl's extras, same keys every sample
        assert set(o["reward_extra_info"]) >= {"score", "unscored", "reason", "h2_contains_score"}
        assert o["reward_extra_info"]["unscored"] is False


def test_unscored_sample_is_flagged_not_hidden(contains_spec: Path, tokenizer_dir: Path) -> None:
    from verl.utils import hf_tokenizer

    config = config_for("compute_score", contains_spec, tokenizer_dir)
    rows = [("u1", "say the digit 7", "7", "")]  # empty ground truth still scores
    data = rollouts(hf_tokenizer(str(tokenizer_dir)), rows)
    data.non_tensor_batch["reward_model"] = np.array([{"ground_truth": None}], dtype=object)
    [out] = run_reward_loop(config, data)
    assert out["reward_score"] == 0.0
    assert out["reward_extra_info"]["unscored"] is True
    assert out["reward_extra_info"]["reason"].startswith("h2_contains: no_reference")


def test_group_manager_judges_each_prompt_group_listwise(
    tmp_path: Path, tokenizer_dir: Path, judge_batches: list[Any]
) -> None:
    from verl.utils import hf_tokenizer

    spec = tmp_path / "spec.yaml"
    spec.write_text("rewards:\n  - reward: h2_group_judge\n")
    config = config_for("compute_score_batch", spec, tokenizer_dir)
    responses = ["7 7", "3", "7", "7 7 7", "1", "2", "7", "5"]
    rows = [(f"u{i // N}", f"say the digit {i // N}", r, "7") for i, r in enumerate(responses)]
    # verl's loop starts every sample as its own task, interleaved across groups
    order = [0, 4, 1, 5, 2, 6, 3, 7]
    data = rollouts(hf_tokenizer(str(tokenizer_dir)), [rows[i] for i in order])
    out = run_reward_loop(config, data)

    # the scripted judge gives each response its count of "7", judging a group at once
    assert [o["reward_score"] for o in out] == [
        float(responses[i].split().count("7")) for i in order
    ]
    assert len(judge_batches) == 2  # one judge call per prompt group
    for batch in judge_batches:
        assert set(Counter(prompt for prompt, _ in batch).values()) == {N}


def test_group_manager_scores_an_incomplete_group_after_the_wait(
    tmp_path: Path, tokenizer_dir: Path, judge_batches: list[Any]
) -> None:
    from verl.utils import hf_tokenizer

    spec = tmp_path / "spec.yaml"
    spec.write_text("rewards:\n  - reward: h2_group_judge\n")
    config = config_for(
        "compute_score_batch", spec, tokenizer_dir, "+reward.reward_kwargs.group_wait_s=0.2"
    )
    rows = [("u1", "say the digit 1", "7 7", "7"), ("u1", "say the digit 1", "7", "7")]
    out = run_reward_loop(config, rollouts(hf_tokenizer(str(tokenizer_dir)), rows))
    assert [o["reward_score"] for o in out] == [2.0, 1.0]  # 2 of 4 came: judged, not hung
    assert [len(b) for b in judge_batches] == [2]


def test_group_manager_without_a_batch_function_is_a_config_error(
    tmp_path: Path, tokenizer_dir: Path
) -> None:
    from rewardkit.errors import ConfigError

    config = config_for(
        "compute_score_batch",
        tmp_path / "unused.yaml",
        tokenizer_dir,
        "reward.custom_reward_function.path=null",
    )
    with pytest.raises(ConfigError, match="compute_score_batch"):
        reward_loop.RewardLoopWorker(config)


@pytest.fixture(scope="module")
def local_ray() -> Any:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_remote_manager_ships_the_function_to_ray_workers(
    tmp_path: Path, tokenizer_dir: Path, local_ray: Any
) -> None:
    """verl's `remote` manager pickles the function into Ray processes: pkg:// makes that work.

    The Ray worker is a fresh process, so the spec uses a built-in reward (`math`) rather
    than the test-registered ones.
    """
    from verl.utils import hf_tokenizer

    spec = tmp_path / "spec.yaml"
    spec.write_text("rewards:\n  - reward: math\n    weight: 2\n")
    config = config_for(
        "compute_score",
        spec,
        tokenizer_dir,
        "reward.reward_manager.name=remote",
        "reward.num_workers=1",
    )
    data = rollouts(hf_tokenizer(str(tokenizer_dir)), ROWS)
    out = run_reward_loop(config, data)
    assert [o["reward_score"] for o in out] == [2.0, 0.0, 2.0, 0.0]


@pytest.mark.slow
def test_remote_manager_refuses_the_async_form(
    contains_spec: Path, tokenizer_dir: Path, local_ray: Any
) -> None:
    config = config_for(
        "compute_score",
        contains_spec,
        tokenizer_dir,
        "reward.custom_reward_function.name=compute_score_async",
        "reward.reward_manager.name=remote",
        "reward.num_workers=1",
    )

    async def build() -> None:
        reward_loop.RewardLoopWorker(config)

    with pytest.raises(AssertionError, match="Async reward score is not supported"):
        asyncio.run(build())


def test_group_manager_group_size_override_closes_groups_without_waiting(
    tmp_path: Path, tokenizer_dir: Path, judge_batches: list[Any]
) -> None:
    from verl.utils import hf_tokenizer

    spec = tmp_path / "spec.yaml"
    spec.write_text("rewards:\n  - reward: h2_group_judge\n")
    config = config_for(
        "compute_score_batch",
        spec,
        tokenizer_dir,
        "+reward.reward_kwargs.group_size=2",
        "+reward.reward_kwargs.group_wait_s=600",  # a wait would time the test out
    )
    rows = [("u1", "say the digit 1", "7 7", "7"), ("u1", "say the digit 1", "7", "7")]
    data = rollouts(hf_tokenizer(str(tokenizer_dir)), rows)
    start = time.monotonic()
    out = run_reward_loop(config, data)
    assert time.monotonic() - start < 60
    assert [o["reward_score"] for o in out] == [2.0, 1.0]
    assert [len(b) for b in judge_batches] == [2]


def test_group_manager_reports_a_batch_function_that_drops_samples(
    tmp_path: Path, tokenizer_dir: Path
) -> None:
    """A batch function returning fewer results fails every sample loudly, none is dropped."""
    from verl.utils import hf_tokenizer

    from rewardkit.errors import ConfigError

    module = tmp_path / "bad_reward.py"
    module.write_text("def compute_score_batch(data_sources, **kwargs):\n    return [0.0]\n")
    config = config_for(
        "compute_score_batch",
        tmp_path / "unused.yaml",
        tokenizer_dir,
        f"reward.custom_reward_function.path={module}",
        "+reward.reward_kwargs.group_size=2",
    )
    rows = [("u1", "say the digit 1", "7", "7"), ("u1", "say the digit 1", "7", "7")]
    with pytest.raises(ConfigError, match="returned 1 results for 2 samples"):
        run_reward_loop(config, rollouts(hf_tokenizer(str(tokenizer_dir)), rows))
