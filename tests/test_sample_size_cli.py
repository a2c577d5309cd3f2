"""``assay sample-size``: the answer (last line = events per arm), JSON, and exit 2 on bad input.

Numbers are checked against the hand-worked formulas (Fleiss for two proportions, Connor for
McNemar, Cohen's table for means), not against the Python function.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from assay.cli.main import app

ASSAY = Path(sys.executable).with_name("assay")


def invoke(args: list[str]) -> Any:
    return CliRunner().invoke(app, ["sample-size", *args])


def _fleiss(p1: float, p2: float) -> int:
    z_a, z_b = 1.959963984540054, 0.8416212335729143
    pooled = (p1 + p2) / 2
    null_sd = math.sqrt(2 * pooled * (1 - pooled))
    alt_sd = math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return math.ceil(((z_a * null_sd + z_b * alt_sd) / (p2 - p1)) ** 2)


def test_last_line_is_the_per_arm_number() -> None:
    r = invoke(["--baseline", "0.8", "--effect", "0.05"])
    assert r.exit_code == 0, r.output
    lines = r.stdout.strip().splitlines()
    assert lines[-1] == str(_fleiss(0.80, 0.85)) == "906"
    assert "two-proportion" in r.stdout and "total: 1,812" in r.stdout


def test_metric_and_means() -> None:
    r = invoke(["--metric", "mae", "--baseline", "3", "--effect", "-1", "--sd", "2"])
    assert r.exit_code == 0, r.output
    assert r.stdout.strip().splitlines()[-1] == "64"  # Cohen's d = 0.5: 64 per group


def test_paired_and_json_to_stdout() -> None:
    r = invoke(
        ["--baseline", "0.8", "--effect", "0.05", "--paired", "--discordance", "0.15", "--json"]
    )
    assert r.exit_code == 0, r.output
    answer = json.loads(r.stdout)
    z_a, z_b = 1.959963984540054, 0.8416212335729143
    connor = ((z_a * math.sqrt(0.15) + z_b * math.sqrt(0.15 - 0.05**2)) / 0.05) ** 2
    assert answer["per_arm"] == answer["total"] == math.ceil(connor) == 469
    assert answer["paired"] is True and answer["discordance"] == 0.15


def test_json_to_a_file_keeps_the_readable_answer(tmp_path: Path) -> None:
    out = tmp_path / "size.json"
    r = invoke(["--baseline", "0.1", "--effect", "0.02", "--ratio", "1", "--json", str(out)])
    assert r.exit_code == 0, r.output
    answer = json.loads(out.read_text())
    assert r.stdout.strip().splitlines()[-1] == str(answer["per_arm"]) == str(_fleiss(0.1, 0.12))


def test_sequential_asks_for_more_events() -> None:
    fixed = invoke(["--baseline", "0.8", "--effect", "0.05"]).stdout.strip().splitlines()[-1]
    r = invoke(["--baseline", "0.8", "--effect", "0.05", "--sequential"])
    assert r.exit_code == 0, r.output
    assert int(r.stdout.strip().splitlines()[-1]) > int(fixed)
    assert "tuning_rows" in r.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["--baseline", "0.8", "--effect", "0"],
        ["--baseline", "0.8", "--effect", "0.05", "--alpha", "1.5"],
        ["--baseline", "0.8", "--effect", "0.05", "--power", "0"],
        ["--baseline", "0.8", "--effect", "0.05", "--metric", "roc_auc"],
        ["--baseline", "3", "--effect", "0.5", "--metric", "mae"],
        ["--baseline", "0.8", "--effect", "0.05", "--paired"],
        ["--baseline", "0.8", "--effect", "0.05", "stray"],
        ["--effect", "0.05"],
    ],
)
def test_bad_input_exits_2_with_one_line(args: list[str]) -> None:
    r = invoke(args)
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    if "--effect" in args and "--baseline" in args:
        assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("error:")


def test_installed_script() -> None:
    done = subprocess.run(
        [str(ASSAY), "sample-size", "--baseline", "0.8", "--effect", "0.05"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "906"
