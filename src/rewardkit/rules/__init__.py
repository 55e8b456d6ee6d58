"""Rule-based verifiers: pure functions over text, no I/O beyond the code sandbox.

Each module holds plain functions and the picklable `Reward` classes that wrap them with
their options (registered by name in `rewardkit.registry`):

- `math`: final-answer correctness with Math-Verify, under a hard deadline (`math`).
- `code`: the response's code run against stdin/stdout tests or asserts (`code`).
- `format`: R1's `<think>…</think>answer` and `|special_token|` summary shapes
  (`think_format`, `summary_format`).
- `language`: R1's language consistency, the target-language share of CoT words
  (`language_consistency`).
- `length`: DAPO's soft overlong penalty and open-r1's n-gram repetition penalty
  (`overlong_penalty`, `repetition_penalty`).

Nothing is imported here: `import rewardkit.rules.format` never pays for Math-Verify or the
sandbox.
"""
