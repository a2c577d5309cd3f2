"""The mergeable state: the one abstraction every metric and drift statistic rests on.

A state is a small record of sufficient statistics with three operations:
``from_batch`` (vectorised over one batch), ``merge`` (associative, commutative, with
:meth:`State.empty` as identity) and ``result`` (the only place that divides).

Each concrete state declares ``exact`` (whether merging loses nothing) and, when it is
approximate, ``error_bound`` (a sentence stating the bound). States serialise to bytes
carrying their kind, version and parameters, and merging states with different
parameters raises :class:`~assay.errors.IncompatibleStateError`.

>>> from assay.stats import CategoricalCountState
>>> a = CategoricalCountState.from_batch(np.array(["DE", "FR"]))
>>> b = CategoricalCountState.from_batch(np.array(["DE", None], dtype=object))
>>> m = State.from_bytes(a.merge(b).to_bytes())
>>> m.counts_dict(), m.null_count
({'DE': 2, 'FR': 1}, 1)
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Self

import numpy as np

from assay.errors import IncompatibleStateError, InputError

_REGISTRY: dict[str, type[State]] = {}
_MAGIC = b"ASY1"


class State:
    """Base class of mergeable states.

    A state holds JSON-able ``params`` (what must match for two states to merge) and
    numpy ``data`` (the sufficient statistics). Subclasses implement ``empty``,
    ``from_batch``, ``_merge_data`` and ``result``.
    """

    kind: ClassVar[str] = "state"
    version: ClassVar[int] = 1
    exact: ClassVar[bool] = True
    error_bound: ClassVar[str | None] = None

    def __init__(self, params: dict[str, Any], data: dict[str, np.ndarray]):
        self.params = params
        self.data = data

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.kind] = cls

    # -- merging ---------------------------------------------------------------------
    def merge(self, other: State) -> Self:
        """Return the state of the union of both batches (neither input is changed)."""
        if type(other) is not type(self):
            raise IncompatibleStateError(
                f"cannot merge a {other.kind!r} state into a {self.kind!r} state",
                field="kind",
            )
        if other.params != self.params:
            diff = sorted(
                k
                for k in set(self.params) | set(other.params)
                if self.params.get(k) != other.params.get(k)
            )
            raise IncompatibleStateError(
                f"cannot merge {self.kind!r} states with different parameters: "
                + ", ".join(f"{k}={self.params.get(k)!r} vs {other.params.get(k)!r}" for k in diff),
                field=diff[0] if diff else None,
                hint="compute both states with the same configuration",
            )
        return type(self)(dict(self.params), self._merge_data(other.data))

    def _merge_data(self, other: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def result(self) -> Any:
        """Finish the computation (the only step that divides)."""
        raise NotImplementedError

    # -- serialisation ---------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """Serialise to a compact, pickle-free byte string.

        Layout: ``ASY1``, a 4-byte header length, a JSON header (kind, version, params and
        each array's name, dtype and shape), then the arrays' raw bytes in order.
        """
        arrays = {k: np.require(v, requirements="C") for k, v in self.data.items()}
        head = self._header()
        return b"".join([_MAGIC, len(head).to_bytes(4, "little"), head,
                         *(v.tobytes() for v in arrays.values())])  # fmt: skip

    def serialized_size(self) -> int:
        """``len(self.to_bytes())``, without building the bytes."""
        return len(_MAGIC) + 4 + len(self._header()) + self.nbytes()

    def _header(self) -> bytes:
        header = {
            "kind": self.kind,
            "version": self.version,
            "params": self.params,
            "arrays": [[k, v.dtype.str, list(v.shape)] for k, v in self.data.items()],
        }
        return json.dumps(header, separators=(",", ":")).encode()

    @staticmethod
    def from_bytes(blob: bytes) -> State:
        """Rebuild any state written by :meth:`to_bytes`."""
        if blob[:4] != _MAGIC:
            raise IncompatibleStateError("not a serialised Assay state", field="state")
        size = int.from_bytes(blob[4:8], "little")
        header = json.loads(blob[8 : 8 + size])
        cls = _REGISTRY.get(header["kind"])
        if cls is None:
            raise IncompatibleStateError(f"unknown state kind {header['kind']!r}", field="kind")
        if header["version"] > cls.version:
            raise IncompatibleStateError(
                f"state {header['kind']!r} has version {header['version']}, "
                f"this Assay reads up to {cls.version}",
                field="version",
                hint="upgrade Assay",
            )
        data: dict[str, np.ndarray] = {}
        offset = 8 + size
        for name, dtype, dims in header["arrays"]:
            shape = tuple(dims)
            kind = np.dtype(dtype)
            count = int(np.prod(shape)) if shape else 1
            if count == 0:
                data[name] = np.empty(shape, dtype=kind)
            else:
                data[name] = np.frombuffer(blob, kind, count, offset).reshape(shape).copy()
            offset += count * kind.itemsize
        return cls(header["params"], data)

    def nbytes(self) -> int:
        """Size of the sufficient statistics in memory."""
        return int(sum(a.nbytes for a in self.data.values()))

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, State)
        return (
            self.params == other.params
            and self.data.keys() == other.data.keys()
            and all(np.array_equal(self.data[k], other.data[k]) for k in self.data)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(params={self.params}, bytes={self.nbytes()})"


def weights_or_ones(sample_weight: np.ndarray | None, n: int) -> np.ndarray:
    """Return ``sample_weight`` as float64, or ones when it is ``None``."""
    if sample_weight is None:
        return np.ones(n, dtype=np.float64)
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.shape != (n,):
        raise InputError(
            f"sample_weight has shape {w.shape}, expected ({n},)", field="sample_weight"
        )
    return w
