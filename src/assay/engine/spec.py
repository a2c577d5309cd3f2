"""What to evaluate: the task, the columns and their roles, checked against the data.

Built once at the edge (API call or CLI flags) and passed down.

>>> spec = EvaluationSpec.build(task="binary", target="y", score="p")
>>> spec.score, spec.threshold
(('p',), 0.5)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import pyarrow as pa

from assay.engine.sources import Source
from assay.errors import ColumnNotFoundError, ColumnTypeError, ConfigError, SchemaMismatchError
from assay.stats import DriftRule

Task = Literal["binary", "multiclass", "regression"]
FeatureType = Literal["numeric", "categorical"]
TASKS: tuple[str, ...] = ("binary", "multiclass", "regression")
ENGINES: tuple[str, ...] = ("local", "ray")


@dataclass(frozen=True)
class EvaluationSpec:
    """Task, column roles and options of one evaluation."""

    task: Task
    target: str
    score: tuple[str, ...] = ()
    prediction: str | None = None
    threshold: float = 0.5
    segments: tuple[str, ...] = ()
    features: Mapping[str, FeatureType] | None = None
    weight: str | None = None
    engine: str = "local"
    drift_rule: DriftRule = field(default_factory=DriftRule)
    ece_bins: int = 10
    seed: int = 0

    @classmethod
    def build(
        cls,
        *,
        task: str,
        target: str,
        score: str | Sequence[str] | None = None,
        prediction: str | None = None,
        threshold: float = 0.5,
        segments: Iterable[str] = (),
        features: Iterable[str] | Mapping[str, str] | None = None,
        weight: str | None = None,
        engine: str = "local",
        drift_rule: DriftRule | None = None,
        ece_bins: int = 10,
        seed: int = 0,
    ) -> EvaluationSpec:
        """Check the options (not yet the data) and normalise them."""
        if task not in TASKS:
            raise ConfigError(
                f"unknown task {task!r}", field="task", hint="use " + ", ".join(TASKS)
            )
        if engine not in ENGINES:
            raise ConfigError(
                f"unknown engine {engine!r}", field="engine", hint="use " + " or ".join(ENGINES)
            )
        if not target:
            raise ConfigError("the target column is required", field="target")
        scores = _split_columns(score)
        if task == "binary" and len(scores) != 1:
            raise ConfigError(
                "binary evaluation needs exactly one score column (the positive-class probability)",
                field="score",
            )
        if task == "multiclass" and not scores and prediction is None:
            raise ConfigError(
                "multiclass evaluation needs --prediction, or one score column per class",
                field="prediction",
            )
        if task == "regression" and prediction is None:
            if len(scores) != 1:
                raise ConfigError("regression needs the predicted value column", field="prediction")
            prediction, scores = scores[0], ()
        if task == "binary" and not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"threshold must be in [0, 1], got {threshold}", field="threshold")
        if ece_bins < 1:
            raise ConfigError("ece_bins must be at least 1", field="ece_bins")
        feature_map: dict[str, FeatureType] | None = None
        if features is not None:
            feature_map = _parse_features(features)
        roles = [target, *scores, prediction, weight, *segments]
        if feature_map:
            clash = sorted(set(feature_map) & {r for r in roles if r})
            if clash:
                raise ConfigError(
                    f"column {clash[0]!r} is both a feature and a target/score/segment column",
                    field="features",
                )
        return cls(
            task=task,  # type: ignore[arg-type]
            target=target,
            score=scores,
            prediction=prediction,
            threshold=float(threshold),
            segments=tuple(segments),
            features=feature_map,
            weight=weight,
            engine=engine,
            drift_rule=drift_rule or DriftRule(),
            ece_bins=ece_bins,
            seed=seed,
        )

    @property
    def role_columns(self) -> list[str]:
        """Columns with a role (not features)."""
        cols = [self.target, *self.score, self.prediction, self.weight, *self.segments]
        return [c for c in dict.fromkeys(cols) if c]

    def resolve_features(self, current: Source, reference: Source | None) -> dict[str, FeatureType]:
        """Check every role column and return the features with their types.

        Without explicit features, every column without a role is a feature, except
        identifiers (``id`` or ``*_id``) and columns of temporal or nested types.
        """
        names = set(current.column_names)
        for col in self.role_columns:
            if col not in names:
                raise ColumnNotFoundError(col, available=names, where="current data")
        if self.features is not None:
            features = dict(self.features)
            for col, declared in list(features.items()):
                if col not in names:
                    raise ColumnNotFoundError(col, available=names, where="current data")
                if declared == "auto":
                    features[col] = _infer_type(col, current.schema.field(col).type)
        else:
            features = {}
            for f in current.schema:
                if f.name in self.role_columns or _is_identifier(f.name):
                    continue
                kind = _infer_type(f.name, f.type, strict=False)
                if kind is not None:
                    features[f.name] = kind
        if reference is not None:
            _check_reference_schema(features, current, reference, self.features is not None)
        return features  # type: ignore[return-value]


def _split_columns(score: str | Sequence[str] | None) -> tuple[str, ...]:
    if score is None:
        return ()
    if isinstance(score, str):
        return tuple(s.strip() for s in score.split(",") if s.strip())
    return tuple(score)


def _parse_features(features: Iterable[str] | Mapping[str, str]) -> dict[str, FeatureType]:
    items = (
        features.items()
        if isinstance(features, Mapping)
        else (([*f.split(":", 1), "auto"])[:2] for f in features)
    )
    out: dict[str, FeatureType] = {}
    for name, kind in items:
        name, kind = name.strip(), kind.strip()
        if kind not in ("numeric", "categorical", "auto"):
            raise ConfigError(
                f"feature {name!r} has unknown type {kind!r}",
                field=f"features.{name}",
                hint="use numeric or categorical",
            )
        out[name] = kind  # type: ignore[assignment]
    return out


def _is_identifier(name: str) -> bool:
    lowered = name.lower()
    return lowered == "id" or lowered.endswith("_id")


def _infer_type(name: str, dtype: pa.DataType, strict: bool = True) -> FeatureType | None:
    if pa.types.is_dictionary(dtype):
        dtype = dtype.value_type
    if pa.types.is_boolean(dtype) or pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return "categorical"
    if pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return "numeric"
    if strict:
        raise ColumnTypeError(
            f"feature {name!r} has type {dtype}, which is neither numeric nor categorical",
            field=name,
            hint="drop it from --features or cast it",
        )
    return None


def kind_of(dtype: pa.DataType) -> str:
    """'numeric', 'categorical' or the Arrow type name, for schema comparisons."""
    return _infer_type("", dtype, strict=False) or str(dtype)


def _check_reference_schema(
    features: Mapping[str, FeatureType], current: Source, reference: Source, explicit: bool
) -> None:
    ref_names = set(reference.column_names)
    missing = [f for f in features if f not in ref_names]
    if missing:
        raise SchemaMismatchError(
            f"reference data lacks feature column(s) {', '.join(map(repr, missing))} "
            "that the current data has",
            field=missing[0],
            hint="give both windows the same columns, or list the shared ones with --features",
        )
    for name, declared in features.items():
        ref_kind = kind_of(reference.schema.field(name).type)
        cur_kind = kind_of(current.schema.field(name).type)
        if ref_kind != cur_kind and (declared == "numeric" or not explicit):
            raise SchemaMismatchError(
                f"feature {name!r} is {ref_kind} in the reference "
                f"but {cur_kind} in the current data",
                field=name,
                hint="cast one of them, or declare the feature categorical",
            )
