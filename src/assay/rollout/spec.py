"""A registered rollout: champion and challenger versions of one model, a mode, a policy.

``shadow``: the challenger scores the same events as the champion (paired by id).
``canary``: a share of the traffic goes to the challenger and the rollout is watched
continuously, so its intervals are always-valid (sequential). ``shadow`` and ``ab`` use
fixed-horizon tests: give them a ``horizon`` (labeled events per arm, e.g. from
``assay sample-size``) and the decision rests on the first ``horizon`` labeled events, so
polling the status does not inflate the false-positive rate.

>>> r = RolloutSpec.model_validate({"name": "v8-canary", "champion": "v7",
...                                 "challenger": "v8", "mode": "canary"})
>>> r.gate_mode, r.policy.alpha
('sequential', 0.05)
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from assay.rollout.policy import GatePolicy

Mode = Literal["shadow", "canary", "ab"]
_GATE_MODES = {"shadow": "paired", "canary": "sequential", "ab": "split"}


class RolloutSpec(BaseModel):
    """What a rollout compares, how, and by which policy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    champion: str = Field(min_length=1, max_length=256, description="Champion version.")
    challenger: str = Field(min_length=1, max_length=256, description="Challenger version.")
    mode: Mode
    policy: GatePolicy = Field(default_factory=GatePolicy)
    horizon: int | None = Field(
        None,
        ge=10,
        description="shadow/ab: labeled events per arm the decision rests on (the first ones "
        "by time), so that looking at the status again and again cannot inflate the error "
        "rate; until both arms have them the status is 'continue'.",
    )
    start: datetime | None = Field(None, description="Compare events from this time on.")
    end: datetime | None = Field(None, description="Compare events before this time.")

    @model_validator(mode="after")
    def _distinct(self) -> RolloutSpec:
        if self.champion == self.challenger:
            raise ValueError("champion and challenger must be different versions")
        if self.start and self.end and self.end <= self.start:
            raise ValueError("end must be after start")
        if self.horizon is not None and self.mode == "canary":
            raise ValueError("a canary is judged sequentially at every look; horizon applies "
                             "to shadow and ab rollouts")  # fmt: skip
        return self

    @property
    def gate_mode(self) -> str:
        """How the gate compares the two versions: paired, sequential or split."""
        return _GATE_MODES[self.mode]
