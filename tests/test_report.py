"""The HTML report: self-contained, faithful to the result dict, escaped, and viewable.

The last test opens the report in a real headless Chromium; it is skipped when no
Chromium is installed, except on CI (``CI=true``) where it fails instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import warnings
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import assay
from assay.report.html import render_report

N = 3000
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def _binary_table(rng: np.random.Generator, shift: float) -> pa.Table:
    score = rng.uniform(size=N)
    return pa.table(
        {
            "target": (rng.uniform(size=N) < score).astype(int),
            "score": score,
            "amount": rng.normal(shift, 1.0, N),
            "country": rng.choice(["DE", "FR", "US"], N),
            "channel": rng.choice(["web", "app"], N),
        }
    )


def _evaluate(*args: Any, **kwargs: Any) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return assay.evaluate(*args, **kwargs).to_dict()


@pytest.fixture(scope="module")
def binary() -> dict[str, Any]:
    """Binary task, a reference, one segment column; ``amount`` drifts, ``country`` not."""
    rng = np.random.default_rng(0)
    current, reference = _binary_table(rng, 0.5), _binary_table(rng, 0.0)
    return _evaluate(current, reference=reference, segments=["channel"])


@pytest.fixture(scope="module")
def multiclass() -> dict[str, Any]:
    rng = np.random.default_rng(1)

    def table() -> pa.Table:
        y = rng.choice(["cat", "dog", "bird"], N)
        pred = np.where(rng.uniform(size=N) < 0.7, y, rng.choice(["cat", "dog", "bird"], N))
        return pa.table({"target": y, "pred": pred, "x": rng.normal(size=N)})

    return _evaluate(table(), reference=table(), task="multiclass", score=None, prediction="pred")


@pytest.fixture(scope="module")
def regression() -> dict[str, Any]:
    """Regression without a reference and without segments."""
    rng = np.random.default_rng(2)
    y = rng.normal(size=N)
    current = pa.table({"target": y, "pred": y + rng.normal(0.2, 0.5, N)})
    return _evaluate(current, task="regression", score=None, prediction="pred")


@pytest.fixture(scope="module")
def hostile() -> dict[str, Any]:
    """Column names and values that are HTML; one class only, so some metrics are undefined."""
    rng = np.random.default_rng(3)

    def table(shift: float) -> pa.Table:
        return pa.table(
            {
                "target": np.ones(N, dtype=int),
                "score": rng.uniform(size=N),
                "<b>x</b>": rng.normal(shift, 1.0, N),
                "city": rng.choice(["<i>Paris</i>", "Rome", None], N),
                "seg <&>": rng.choice(["<app>", "web"], N),
            }
        )

    return _evaluate(table(1.0), reference=table(0.0), segments=["seg <&>"])


def _drift_table(page: str) -> str:
    start = page.index('<div id="drift-table">')
    return page[start : page.index("</table>", start)]


# -- (1) one file, nothing external -----------------------------------------------------------


@pytest.mark.parametrize("name", ["binary", "multiclass", "regression", "hostile"])
def test_report_is_one_self_contained_file(name: str, request: pytest.FixtureRequest) -> None:
    page = render_report(request.getfixturevalue(name))
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<html") == 1 and page.rstrip().endswith("</html>")
    lowered = page.lower()
    for forbidden in ("<script", "<link", "<img", "<iframe", "src=", "href=", "@import", "url("):
        assert forbidden not in lowered, forbidden
    assert "http://" not in lowered and "https://" not in lowered


def test_write_report_writes_the_same_page(binary: dict[str, Any], tmp_path: Path) -> None:
    result = assay.EvaluationResult(**binary)
    path = result.write_report(tmp_path / "report.html")
    assert path.read_text(encoding="utf-8") == render_report(binary)


# -- (2) content against the result dict ------------------------------------------------------


def test_binary_metrics_and_intervals_appear(binary: dict[str, Any]) -> None:
    page = render_report(binary)
    overall, reference = binary["metrics"]["overall"], binary["metrics"]["reference"]
    for group in (overall, reference):
        for name in ("roc_auc", "average_precision", "accuracy", "log_loss", "brier", "ece"):
            assert f"{group[name]:.4f}" in page, name
            low, high = group[f"{name}_ci"]
            assert f"[{low:.4f}, {high:.4f}]" in page, name
    for value, segment in binary["metrics"]["by_segment"]["channel"].items():
        assert f"<td>{value}</td>" in page
        assert f"{segment['roc_auc']:.4f}" in page
    assert f"{binary['rows']['current']:,}" in page
    for key in ("config_hash", "assay_version", "started_at"):
        assert str(binary["run"][key]) in page


def test_every_feature_is_listed_drifted_first(binary: dict[str, Any]) -> None:
    page = render_report(binary)
    drift = binary["drift"]
    drifted = [n for n, r in drift.items() if r["drifted"]]
    stable = [n for n, r in drift.items() if not r["drifted"]]
    assert drifted == ["amount"] and stable == ["country"]  # the fixture's premise
    table = _drift_table(page)
    for name in drift:
        assert f"<td>{name}</td>" in table
    assert max(table.index(f"<td>{n}</td>") for n in drifted) < min(
        table.index(f"<td>{n}</td>") for n in stable
    )
    assert escape(binary["drift_rule"]["description"]) in page
    assert f"{drift['amount']['psi']:.4f}" in table
    assert "drifted feature: amount" in page and "drifted feature: country" not in page
    assert "model output: score" in page


def test_plot_count_matches_the_result(binary: dict[str, Any]) -> None:
    # 9 headline metrics + 3 segment metrics (one segment column) + ROC + reliability
    # + one drifted feature + the prediction drift of the score
    assert render_report(binary).count("<svg") == 9 + 3 + 2 + 1 + 1


def test_user_strings_are_escaped(hostile: dict[str, Any]) -> None:
    page = render_report(hostile)
    for raw in ("<b>x</b>", "<i>Paris</i>", "<app>", "seg <&>"):
        assert raw not in page, raw
    for escaped in ("&lt;b&gt;x&lt;/b&gt;", "&lt;app&gt;"):
        assert escaped in page, escaped
    assert "By seg &lt;&amp;&gt;" in page
    assert re.search(r"<(b|i|app)>", page) is None


def test_undefined_metrics_show_na_and_the_reason(hostile: dict[str, Any]) -> None:
    page = render_report(hostile)
    undefined = hostile["metrics"]["overall"]["undefined"]
    assert "roc_auc" in undefined
    for reason in undefined.values():
        assert f'<span class="na">n/a</span><span class="reason">{escape(reason)}</span>' in page
    assert f"ROC curve not available: {escape(undefined['roc_auc'])}" in page
    assert hostile["warnings"]
    for message in hostile["warnings"]:
        assert f"<li>{escape(message)}</li>" in page


def test_null_category_is_shown(hostile: dict[str, Any]) -> None:
    assert hostile["drift"]["city"]["bins"]["categories"][-1] is None
    hostile = {**hostile, "drift": {**hostile["drift"]}}
    hostile["drift"]["city"] = {**hostile["drift"]["city"], "drifted": True}
    page = render_report(hostile)
    assert "drifted feature: city" in page and "(null)" in page
    assert "&lt;i&gt;Paris&lt;/i&gt;" in page and "<i>Paris</i>" not in page


def test_multiclass_renders(multiclass: dict[str, Any]) -> None:
    page = render_report(multiclass)
    overall = multiclass["metrics"]["overall"]
    for name in ("accuracy", "f1_macro"):
        assert f"{overall[name]:.4f}" in page
    assert 'id="curves"' not in page and 'id="segments"' not in page
    assert "<h3>Prediction drift</h3>" in page and "Confusion matrix" in page


def test_regression_without_reference_renders(regression: dict[str, Any]) -> None:
    page = render_report(regression)
    overall = regression["metrics"]["overall"]
    for name in ("mae", "rmse", "r2"):
        assert f"{overall[name]:.4f}" in page
    assert ">reference<" not in page  # no reference column, row or legend
    assert "Not measured: no reference window was given." in page
    assert page.count("<svg") == 6  # one interval plot per regression headline metric


def test_minimal_dict_renders() -> None:
    page = render_report({"task": "binary", "rows": {"current": 0}, "metrics": {"overall": {}}})
    assert "Assay evaluation report" in page and "<svg" not in page


# -- (3) a real browser ----------------------------------------------------------------------


def _find_chromium() -> str:
    """The browser binary; fails on CI (``CI=true``) and skips elsewhere when absent."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    message = "headless Chromium not found; install it with: apt-get install -y chromium"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _run_browser(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [chromium, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars"]
    command += [f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)


def test_report_opens_in_headless_chromium(binary: dict[str, Any], tmp_path: Path) -> None:
    chromium = _find_chromium()
    report = assay.EvaluationResult(**binary).write_report(tmp_path / "report.html")
    dom = _run_browser(chromium, tmp_path / "profile", "--dump-dom", report.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count("<svg") == 9 + 3 + 2 + 1 + 1
    assert "Assay evaluation report" in dom.stdout
    assert dom.stdout.count("<table") == render_report(binary).count("<table")

    shot = tmp_path / "report.png"
    done = _run_browser(
        chromium,
        tmp_path / "profile",
        f"--screenshot={shot}",
        "--window-size=1280,2000",
        report.as_uri(),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.stat().st_size > 10_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
