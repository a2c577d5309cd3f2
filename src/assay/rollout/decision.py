"""From measured differences to one of three decisions: promote, reject, continue.

Each check reads the interval of the difference (candidate − baseline), turned so that
positive means "better": a non-inferiority check passes when the whole interval lies above
``-margin`` and fails when it lies below; a superiority check compares with ``+margin``.
Otherwise the check is inconclusive. Any failed check (or a sample-ratio mismatch)
rejects, all checks passing promotes, anything else continues until more labels arrive.
Promotion needs every check to pass, so testing several metrics does not inflate the
chance of a wrong promotion.

>>> judge((0.004, 0.03), kind="non_inferiority", margin=0.01, higher_is_better=True)
'pass'
>>> judge((0.01, 0.03), kind="non_inferiority", margin=0.0, higher_is_better=False)
'fail'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Decision = Literal["promote", "reject", "continue"]
Outcome = Literal["pass", "fail", "inconclusive"]
EXIT_CODES: dict[Decision, int] = {"promote": 0, "reject": 1, "continue": 3}


def judge(ci: tuple[float, float], *, kind: str, margin: float, higher_is_better: bool) -> Outcome:
    """The outcome of one check, from the interval of candidate − baseline."""
    sign = 1.0 if higher_is_better else -1.0
    low, high = sorted((sign * ci[0], sign * ci[1]))
    bar = margin if kind == "superiority" else -margin
    if low > bar:
        return "pass"
    if high < bar:
        return "fail"
    return "inconclusive"


@dataclass
class CheckResult:
    """One metric's comparison and its verdict."""

    metric: str
    role: Literal["primary", "guardrail"]
    kind: str  # non_inferiority | superiority (guardrails are non-inferiority checks)
    margin: float
    higher_is_better: bool
    difference: dict[str, Any]  # Difference.to_dict()
    outcome: Outcome
    reason: str
    segment: dict[str, str] | None = None  # {"column": ..., "value": ...} for a segment check

    @property
    def label(self) -> str:
        """The metric, with its segment when the check is on one segment value."""
        if self.segment is None:
            return self.metric
        return f"{self.metric}[{self.segment['column']}={self.segment['value']}]"

    def to_dict(self) -> dict[str, Any]:
        """The check as JSON-able data: the difference's numbers beside the verdict."""
        return {
            "metric": self.metric,
            "segment": self.segment,
            "role": self.role,
            "kind": self.kind,
            "margin": self.margin,
            "higher_is_better": self.higher_is_better,
            **{k: v for k, v in self.difference.items() if k != "metric"},
            "outcome": self.outcome,
            "reason": self.reason,
        }


def check(
    difference: Any,
    *,
    role: Literal["primary", "guardrail"],
    kind: str,
    margin: float,
    higher_is_better: bool,
    enough_rows: bool,
    segment: dict[str, str] | None = None,
) -> CheckResult:
    """Judge one :class:`~assay.stats.Difference` against its margin."""
    numbers = difference.to_dict()
    if not enough_rows:
        outcome: Outcome = "inconclusive"
        why = "not enough labeled rows yet"
    elif difference.ci is None:
        outcome, why = "inconclusive", difference.reason or "the difference is undefined"
    else:
        outcome = judge(difference.ci, kind=kind, margin=margin, higher_is_better=higher_is_better)
        why = _explain(outcome, kind, margin, higher_is_better)
    return CheckResult(
        metric=difference.metric,
        role=role,
        kind=kind,
        margin=margin,
        higher_is_better=higher_is_better,
        difference=numbers,
        outcome=outcome,
        reason=f"{_numbers(difference, segment)}: {why}",
        segment=segment,
    )


def _explain(outcome: Outcome, kind: str, margin: float, higher_is_better: bool) -> str:
    better = "higher" if higher_is_better else "lower"
    if kind == "superiority":
        claim = f"the candidate is better ({better}) by more than {margin:g}"
    else:
        claim = (
            f"the candidate is no more than {margin:g} worse"
            if margin
            else f"the candidate is better ({better})"
        )
    if outcome == "pass":
        return f"the whole interval shows {claim}"
    if outcome == "fail":
        return f"the whole interval rules out that {claim}"
    return f"the interval cannot yet tell whether {claim}"


def _numbers(d: Any, segment: dict[str, str] | None) -> str:
    name = d.metric if segment is None else f"{d.metric} [{segment['column']}={segment['value']}]"
    if d.difference is None:
        return f"{name} undefined"
    text = f"{name} {d.baseline:.4g} → {d.candidate:.4g} (difference {d.difference:+.4g}"
    if d.ci is not None:
        text += f", {100 * (1 - d.alpha):g}% interval [{d.ci[0]:+.4g}, {d.ci[1]:+.4g}]"
    if d.p_value is not None:
        text += f", p={d.p_value:.3g}"
    return text + f", {d.test})"


@dataclass
class GateDecision:
    """The gate's answer with every number it rests on."""

    decision: Decision
    mode: str  # paired | split | sequential
    task: str
    rows: dict[str, int]
    checks: list[CheckResult]
    reasons: list[str]
    policy: dict[str, Any]
    srm: dict[str, Any] | None = None
    models: dict[str, Any] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """0 promote, 1 reject, 3 continue (inconclusive)."""
        return EXIT_CODES[self.decision]

    def to_dict(self) -> dict[str, Any]:
        """The decision as JSON-able data."""
        return {
            "decision": self.decision,
            "exit_code": self.exit_code,
            "mode": self.mode,
            "task": self.task,
            "rows": self.rows,
            "checks": [c.to_dict() for c in self.checks],
            "srm": self.srm,
            "reasons": self.reasons,
            "policy": self.policy,
            "models": self.models,
            "run": self.run,
        }


def decide(checks: list[CheckResult], srm: dict[str, Any] | None) -> tuple[Decision, list[str]]:
    """The decision and its reasons: any failure rejects, all passing promotes."""
    failed = [c for c in checks if c.outcome == "fail"]
    reasons = [f"{c.role} {c.outcome}: {c.reason}" for c in checks]
    if srm is not None and srm.get("mismatch"):
        reasons.insert(
            0,
            f"sample ratio mismatch: observed {srm['observed']} against expected shares "
            f"{srm['expected_shares']} (p={srm['p_value']:.3g} < {srm['threshold']:g}); "
            "the traffic split is broken, so the comparison cannot be trusted",
        )
        return "reject", reasons
    if failed:
        return "reject", reasons
    if checks and all(c.outcome == "pass" for c in checks):
        return "promote", reasons
    return "continue", reasons
