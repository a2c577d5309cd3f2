"""Errors raised in a Ray task travel back boxed and are raised again on the driver as
themselves: same class, message, field and hint, and still the builtin they subclass."""

from __future__ import annotations

import pickle

import pytest

from assay.engine.ray_tasks import Boxed, raise_boxed
from assay.errors import (
    AssayError,
    BatchValidationError,
    ColumnNotFoundError,
    ColumnTypeError,
    MissingDependencyError,
    PermissionDeniedError,
    StoreUnavailableError,
    WorkerMemoryError,
)

ERRORS = [
    (ColumnTypeError("score 1.7 is outside [0, 1]", field="score"), ValueError),
    (ColumnNotFoundError("score", available=["id", "y"]), ValueError),
    (MissingDependencyError("ray", "ray"), ImportError),
    (WorkerMemoryError("the fold needed more", field="worker_memory", hint="more"), MemoryError),
    (StoreUnavailableError("cannot reach the database", field="store"), ConnectionError),
    (PermissionDeniedError("read keys may not write"), PermissionError),
    (BatchValidationError([{"index": 3, "field": "score", "reason": "bad"}], total=9), ValueError),
]


@pytest.mark.parametrize(("error", "builtin"), ERRORS, ids=lambda e: type(e).__name__)
def test_a_boxed_error_is_raised_again_as_itself(error: AssayError, builtin: type) -> None:
    boxed = pickle.loads(pickle.dumps(Boxed.of(error)))  # as it crosses processes
    with pytest.raises(builtin) as caught:
        raise_boxed(boxed)
    again = caught.value
    assert type(again) is type(error)
    assert str(again) == str(error)
    assert (again.field, again.hint) == (error.field, error.hint)  # type: ignore[attr-defined]
    assert again.__dict__ == error.__dict__


def test_a_value_that_is_no_box_is_left_alone() -> None:
    assert raise_boxed({"metrics": {}}) is None
