"""Assay: continuous evaluation of machine-learning models in production.

>>> import assay
>>> callable(assay.evaluate)
True
"""

__version__ = "0.1.0"

from assay.client import Client
from assay.errors import AssayError, AssayWarning
from assay.result import EvaluationResult
from assay.service.evaluate import evaluate
from assay.stats import DriftRule

__all__ = [
    "AssayError",
    "AssayWarning",
    "Client",
    "DriftRule",
    "EvaluationResult",
    "__version__",
    "evaluate",
]
