"""A registered model: its task and the columns its events carry.

>>> spec = ModelSpec(name="fraud", task="binary", features={"amount": "numeric"},
...                  segments=["channel"])
>>> spec.feature_names, spec.threshold
(['amount'], 0.5)
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
MAX_FEATURES = 500
MAX_SEGMENTS = 20


class ModelSpec(BaseModel):
    """What ``POST /v1/models`` registers (the tenant comes from the API key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Model name, unique per tenant.")
    task: Literal["binary", "multiclass", "regression"]
    features: dict[str, Literal["numeric", "categorical"]] = Field(default_factory=dict)
    segments: list[str] = Field(default_factory=list)
    threshold: float = Field(0.5, ge=0.0, le=1.0, description="Binary decision threshold.")
    classes: list[str] | None = Field(None, description="Class labels (multiclass).")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_PATTERN.match(value):
            raise ValueError(
                "use 1-128 letters, digits, '_', '.' or '-', starting with a letter or digit"
            )
        return value

    @field_validator("features")
    @classmethod
    def _features(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_FEATURES:
            raise ValueError(f"at most {MAX_FEATURES} features")
        for name in value:
            if not 0 < len(name) <= 128:
                raise ValueError("feature names have 1-128 characters")
        return value

    @field_validator("segments")
    @classmethod
    def _segments(cls, value: list[str]) -> list[str]:
        if len(value) > MAX_SEGMENTS:
            raise ValueError(f"at most {MAX_SEGMENTS} segment columns")
        if len(set(value)) != len(value):
            raise ValueError("segment names repeat")
        for name in value:
            if not 0 < len(name) <= 128:
                raise ValueError("segment names have 1-128 characters")
        return value

    @model_validator(mode="after")
    def _distinct_names(self) -> ModelSpec:
        core = {"id", "version", "timestamp", "score", "prediction", "label", "latency_ms", "error"}
        clash = (set(self.features) & set(self.segments)) | (
            (set(self.features) | set(self.segments)) & core
        )
        if clash:
            raise ValueError(
                f"feature and segment names must differ from each other and from "
                f"{sorted(core)}: {sorted(clash)}"
            )
        return self

    @model_validator(mode="after")
    def _classes(self) -> ModelSpec:
        if self.task == "multiclass":
            if not self.classes or len(self.classes) < 2:
                raise ValueError("a multiclass model lists its classes (at least two)")
            if len(set(self.classes)) != len(self.classes):
                raise ValueError("classes repeat")
        elif self.classes is not None:
            raise ValueError("classes apply to multiclass models only")
        return self

    @property
    def feature_names(self) -> list[str]:
        """Feature names in registration order."""
        return list(self.features)
