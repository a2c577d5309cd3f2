"""A gate decision as Markdown (for a CI job's summary) and as JUnit XML (for CI test tabs).

>>> d = {"decision": "continue", "mode": "split", "rows": {"baseline": 10, "candidate": 9},
...      "reasons": [], "checks": [{"metric": "accuracy", "role": "primary",
...      "kind": "non_inferiority", "margin": 0.01, "baseline": 0.9, "candidate": 0.91,
...      "difference": 0.01, "ci": None, "p_value": None, "test": "two_proportion",
...      "outcome": "inconclusive", "reason": "not enough labeled rows yet"}]}
>>> print(to_markdown(d).splitlines()[0])
## Assay gate: CONTINUE (not enough evidence yet)
>>> "<skipped" in to_junit(d)
True
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

_HEADLINE = {
    "promote": "PROMOTE (the candidate meets every check)",
    "reject": "REJECT (roll back: a check failed)",
    "continue": "CONTINUE (not enough evidence yet)",
}
_MARK = {"pass": "✅ pass", "fail": "❌ fail", "inconclusive": "⏳ inconclusive"}


def _num(value: Any, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.4g}" if signed else f"{value:.4g}"


def _interval(ci: Any) -> str:
    return "–" if not ci else f"[{ci[0]:+.4g}, {ci[1]:+.4g}]"


def _label(c: Mapping[str, Any]) -> str:
    segment = c.get("segment")
    return c["metric"] if not segment else f"{c['metric']}[{segment['column']}={segment['value']}]"


def _rule(c: Mapping[str, Any]) -> str:
    better = "↑" if c.get("higher_is_better", True) else "↓"
    if c["role"] == "guardrail":
        return f"guardrail: worsens < {c['margin']:g} {better}"
    sign = "+" if c["kind"] == "superiority" else "−"
    return f"{c['kind'].replace('_', '-')} {sign}{c['margin']:g} {better}"


def to_markdown(decision: Mapping[str, Any]) -> str:
    """A Markdown summary: the decision, a table of checks, the reasons."""
    rows = decision.get("rows", {})
    lines = [
        f"## Assay gate: {_HEADLINE[decision['decision']]}",
        "",
        f"Mode **{decision['mode']}**; rows: "
        + ", ".join(f"{k} {v}" for k, v in rows.items())
        + ".",
        "",
        "| check | metric | baseline | candidate | difference | interval | p | test | outcome |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in decision["checks"]:
        lines.append(
            f"| {_rule(c)} | `{_label(c)}` | {_num(c.get('baseline'))} | "
            f"{_num(c.get('candidate'))} | {_num(c.get('difference'), True)} | "
            f"{_interval(c.get('ci'))} | {_num(c.get('p_value'))} | {c.get('test', '')} | "
            f"{_MARK[c['outcome']]} |"
        )
    srm = decision.get("srm")
    if srm:
        verdict = "**mismatch**" if srm["mismatch"] else "ok"
        lines += [
            "",
            f"Sample ratio: observed {srm['observed']}, p={srm['p_value']:.3g}: {verdict}.",
        ]
    if decision.get("reasons"):
        lines += ["", "<details><summary>Reasons</summary>", ""]
        lines += [f"- {r}" for r in decision["reasons"]]
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def to_junit(decision: Mapping[str, Any]) -> str:
    """JUnit XML: one test case per check; failed checks fail, inconclusive ones are skipped."""
    checks = decision["checks"]
    suite = ET.Element(
        "testsuite",
        name="assay gate",
        tests=str(len(checks)),
        failures=str(sum(c["outcome"] == "fail" for c in checks)),
        skipped=str(sum(c["outcome"] == "inconclusive" for c in checks)),
        errors="0",
    )
    for c in checks:
        case = ET.SubElement(suite, "testcase", classname=f"assay.gate.{c['role']}", name=_label(c))
        if c["outcome"] == "fail":
            ET.SubElement(case, "failure", message=c["reason"]).text = c["reason"]
        elif c["outcome"] == "inconclusive":
            ET.SubElement(case, "skipped", message=c["reason"])
        else:
            ET.SubElement(case, "system-out").text = c["reason"]
    srm = decision.get("srm")
    if srm:
        case = ET.SubElement(suite, "testcase", classname="assay.gate.srm", name="sample_ratio")
        suite.set("tests", str(len(checks) + 1))
        if srm["mismatch"]:
            suite.set("failures", str(int(suite.get("failures", "0")) + 1))
            ET.SubElement(case, "failure", message=f"sample ratio mismatch, p={srm['p_value']:.3g}")
    suites = ET.Element("testsuites", name="assay")
    suites.append(suite)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode")
