"""Assert tests checked from outside the program: record/replay across the sandbox boundary.

The program runs in the sandbox and does one thing there: answer calls. The reference's
test code runs in a trusted worker (`evaluator`) where each of the program's functions is
a stand-in; the calls the tests make are recorded, run in the sandbox as plain data
(`codec`), and replayed into the tests until no new call appears (`runner`). The
comparison, the expected values and the verdict never enter the program's process.

    names         which names in the test code are the program's
    codec         plain data as tagged JSON, both directions (also sent into the sandbox)
    sandbox_main  the script the sandbox runs: load the program, answer the calls
    evaluator     the trusted side: stand-ins, placeholders, record and strict runs
    runner        the parent's loop over phases, parsing the sandbox's answers
"""

from rewardkit.rules._asserts.runner import AssertsOutcome, run_asserts

__all__ = ["AssertsOutcome", "run_asserts"]
