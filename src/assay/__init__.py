"""Assay: continuous evaluation of machine-learning models in production.

The public names are imported on first use, so ``import assay`` (and every ``assay``
command) starts fast.

>>> import assay
>>> callable(assay.evaluate), assay.Client.__name__
(True, 'Client')
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "AssayError": "assay.errors",
    "AssayWarning": "assay.errors",
    "Client": "assay.client",
    "DriftRule": "assay.stats",
    "EvaluationResult": "assay.result",
    "GateDecision": "assay.rollout.decision",
    "GatePolicy": "assay.rollout.policy",
    "evaluate": "assay.service.evaluate",
    "gate": "assay.service.gate",
}

if TYPE_CHECKING:
    from assay.client import Client
    from assay.errors import AssayError, AssayWarning
    from assay.result import EvaluationResult
    from assay.rollout.decision import GateDecision
    from assay.rollout.policy import GatePolicy
    from assay.service.evaluate import evaluate
    from assay.service.gate import gate
    from assay.stats import DriftRule


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'assay' has no attribute {name!r}")


__all__ = [
    "AssayError",
    "AssayWarning",
    "Client",
    "DriftRule",
    "EvaluationResult",
    "GateDecision",
    "GatePolicy",
    "__version__",
    "evaluate",
    "gate",
]
