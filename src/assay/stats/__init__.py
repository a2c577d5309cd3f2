"""The statistics core: mergeable states, metrics, drift tests, intervals, comparisons.

Pure numpy/scipy; imports nothing else from Assay but its errors.
"""

from assay.stats.binary import BinaryConfusionState, BinaryScoreState, binary_metrics
from assay.stats.compare import (
    BINARY_METRICS,
    HIGHER_IS_BETTER,
    MULTICLASS_METRICS,
    REGRESSION_METRICS,
    Difference,
)
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
from assay.stats.guardrails import mean_difference, quantile_difference, sample_ratio_mismatch
from assay.stats.intervals import little_bootstrap_interval, mean_interval, wilson_interval
from assay.stats.multiclass import MulticlassConfusionState, MulticlassProbaState
from assay.stats.outcome import MetricSet
from assay.stats.paired import paired_difference
from assay.stats.power import sample_size
from assay.stats.ranking import ScoreGroups, auc_delong
from assay.stats.regression import RegressionState, weighted_median
from assay.stats.sequential import SEQUENTIAL_METRICS, sequential_difference
from assay.stats.split import split_difference
from assay.stats.state import State

__all__ = [
    "BINARY_METRICS",
    "HIGHER_IS_BETTER",
    "MULTICLASS_METRICS",
    "REGRESSION_METRICS",
    "SEQUENTIAL_METRICS",
    "BinaryConfusionState",
    "BinaryScoreState",
    "CategoricalCountState",
    "Difference",
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
    "mean_difference",
    "mean_interval",
    "numeric_drift",
    "paired_difference",
    "psi",
    "quantile_difference",
    "sample_ratio_mismatch",
    "sample_size",
    "sequential_difference",
    "split_difference",
    "weighted_median",
    "wilson_interval",
]
