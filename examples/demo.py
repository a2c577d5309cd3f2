"""`make demo`: generate a fraud model's reference and current windows, then evaluate them.

Runs the same `assay evaluate` command a user would, on Parquet files it writes first.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

from assay.simulate import DECISION_THRESHOLD, fraud_windows


def main() -> int:
    """Write the data set, run the evaluation, point at the outputs."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("demo-output"))
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    reference, current = fraud_windows(args.rows)
    ref_path, cur_path = args.out / "reference.parquet", args.out / "current.parquet"
    pq.write_table(reference, ref_path)
    pq.write_table(current, cur_path)
    print(f"wrote {args.rows:,} reference and {args.rows:,} current transactions to {args.out}/")

    command = [
        str(Path(sys.executable).with_name("assay")),
        "evaluate",
        "--current", str(cur_path),
        "--reference", str(ref_path),
        "--task", "binary",
        "--target", "is_fraud",
        "--score", "score",
        "--prediction", "prediction",
        "--threshold", str(DECISION_THRESHOLD),
        "--segment", "channel",
        "--json", str(args.out / "evaluation.json"),
        "--report", str(args.out / "report.html"),
    ]  # fmt: skip
    print("$ assay " + " ".join(command[1:]), flush=True)
    code = subprocess.call(command)
    print(f"demo finished in {time.perf_counter() - started:.1f} s (exit {code})")
    return code


if __name__ == "__main__":
    sys.exit(main())
