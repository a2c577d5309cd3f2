"""The statistics core: mergeable states, metrics, drift tests and intervals.

Pure numpy/scipy; imports nothing else from Assay but its errors.
"""

from assay.stats.binary import BinaryConfusionState, BinaryScoreState, binary_metrics
from assay.stats.drift import (
    CategoricalCountState,
    NumericSampleState,
    categorical_drift,
    chi2_homogeneity,
    jensen_shannon,
    ks_p_value,
    numeric_drift,
    psi,
)
from assay.stats.drift_rule import DriftRule, benjamini_hochberg
from assay.stats.intervals import little_bootstrap_interval, mean_interval, wilson_interval
from assay.stats.multiclass import MulticlassConfusionState, MulticlassProbaState
from assay.stats.outcome import MetricSet
from assay.stats.ranking import ScoreGroups, auc_delong
from assay.stats.regression import RegressionState, weighted_median
from assay.stats.state import State

__all__ = [
    "BinaryConfusionState",
    "BinaryScoreState",
    "CategoricalCountState",
    "DriftRule",
    "MetricSet",
    "MulticlassConfusionState",
    "MulticlassProbaState",
    "NumericSampleState",
    "RegressionState",
    "ScoreGroups",
    "State",
    "auc_delong",
    "benjamini_hochberg",
    "binary_metrics",
    "categorical_drift",
    "chi2_homogeneity",
    "jensen_shannon",
    "ks_p_value",
    "little_bootstrap_interval",
    "mean_interval",
    "numeric_drift",
    "psi",
    "weighted_median",
    "wilson_interval",
]
