"""scipy.stats is imported lazily; threads needing it at the same moment must not deadlock.

CPython's per-module import locks can report a deadlock when two threads import a package
with circular imports (scipy.stats) at once: the local engine's thread pool once failed so.
Each check runs in a fresh interpreter, where scipy.stats is not imported yet.
"""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys, threading
from assay.stats import drift, intervals, guardrails, paired, split
assert "scipy.stats" not in sys.modules, "imported eagerly"
barrier = threading.Barrier(6)
errors = []
calls = [
    lambda: drift.ks_p_value(0.3, 40, 50),         # scipy.stats._stats_py (exact KS)
    lambda: drift.ks_p_value(0.01, 20_000, 20_000),  # kstwo
    lambda: intervals.z_value(),                   # norm
    lambda: drift.chi2_homogeneity(__import__("numpy").array([[5.0, 7.0], [6.0, 4.0]])),
    lambda: paired.mcnemar_p_value(3, 9),          # binom
    lambda: split.two_proportion_test(0.4, 100, 0.5, 100, 0.05),  # norm
]
def run(call):
    barrier.wait()
    try:
        call()
    except BaseException as err:
        errors.append(repr(err))
threads = [threading.Thread(target=run, args=(c,)) for c in calls]
for t in threads: t.start()
for t in threads: t.join()
assert not errors, errors
print("ok")
"""


def test_threads_importing_scipy_stats_at_once_do_not_deadlock() -> None:
    for _ in range(5):
        done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                              timeout=120, check=False)  # fmt: skip
        assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
