"""The one error hierarchy of Assay.

Every error a user can cause is an :class:`AssayError`. Each class also subclasses the
matching builtin (so ``except ValueError`` keeps working) and carries the HTTP status a
server answers with.

>>> try:
...     raise ColumnNotFoundError("score", available=["id", "target"])
... except ValueError as err:
...     print(err.http_status, err.field)
422 score
"""

from __future__ import annotations

from collections.abc import Iterable


class AssayError(Exception):
    """Base class of every error Assay raises on purpose."""

    http_status: int = 500

    def __init__(self, message: str, *, field: str | None = None, hint: str | None = None):
        self.field = field
        self.hint = hint
        text = message if hint is None else f"{message} ({hint})"
        super().__init__(text)


class InputError(AssayError, ValueError):
    """Input data or arguments that cannot be evaluated as given."""

    http_status = 422


class ColumnNotFoundError(InputError):
    """A column named in the configuration is missing from the data."""

    def __init__(self, column: str, *, available: Iterable[str] = (), where: str = "input"):
        names = sorted(available)
        shown = ", ".join(names[:20]) + (" ..." if len(names) > 20 else "")
        super().__init__(
            f"column {column!r} not found in {where}",
            field=column,
            hint=f"available columns: {shown}" if names else "the data has no columns",
        )


class ColumnTypeError(InputError):
    """A column holds values of the wrong type or outside the allowed range."""


class SchemaMismatchError(InputError):
    """Reference and current data disagree on the columns or their types."""


class EmptyInputError(InputError):
    """The data holds no rows to evaluate."""


class ConfigError(AssayError, ValueError):
    """An option or configuration value is invalid."""

    http_status = 400


class IncompatibleStateError(AssayError, ValueError):
    """Two states cannot be merged (different kind, bins, classes or threshold)."""

    http_status = 409


class MissingDependencyError(AssayError, ImportError):
    """An optional dependency is not installed."""

    http_status = 501

    def __init__(self, package: str, extra: str):
        super().__init__(
            f"this feature needs the optional package {package!r}",
            hint=f"install it with: pip install 'assay[{extra}]'",
        )


class NotFoundError(AssayError, LookupError):
    """A model, key or record does not exist (or belongs to another tenant)."""

    http_status = 404


class ConflictError(AssayError, ValueError):
    """The request contradicts stored state (a model re-registered with other columns)."""

    http_status = 409


class SchemaVersionError(AssayError, RuntimeError):
    """The store's schema is newer than this Assay: refuse to run rather than damage it."""

    http_status = 503


class BatchValidationError(InputError):
    """Some events of a batch are invalid; nothing of the batch was stored.

    ``problems`` lists ``{"index": i, "field": name, "reason": text}`` per bad event.
    """

    def __init__(self, problems: list[dict[str, object]], *, total: int):
        self.problems = problems
        first = problems[0] if problems else {}
        events = len({p.get("index") for p in problems})
        super().__init__(
            f"{events} of {total} event(s) are invalid; first: event "
            f"{first.get('index')} field {first.get('field')!r}: {first.get('reason')}",
            field=str(first.get("field")) if first else None,
        )


class PayloadTooLargeError(InputError):
    """A request body or batch exceeds a documented limit."""

    http_status = 413


class UnsupportedMediaTypeError(InputError):
    """A request body in a format the route does not read (HTTP 415)."""

    http_status = 415


class OverloadedError(AssayError, RuntimeError):
    """The write queue is full: retry after ``retry_after`` seconds."""

    http_status = 429

    def __init__(self, message: str, *, retry_after: float):
        self.retry_after = retry_after
        super().__init__(message)


class AuthenticationError(AssayError, PermissionError):
    """No valid API key was given."""

    http_status = 401


class PermissionDeniedError(AssayError, PermissionError):
    """The API key's role does not allow this action."""

    http_status = 403


class WorkerMemoryError(AssayError, MemoryError):
    """A Ray task needed more memory than ``ray_options["worker_memory"]`` gives it."""


class ClusterUnavailableError(AssayError, ConnectionError):
    """No Ray cluster answers at the address given (``--ray-address``, ``ray_address``)."""

    http_status = 503


class StoreUnavailableError(AssayError, ConnectionError):
    """A database cannot be opened or reached (bad path, server down, wrong credentials)."""

    http_status = 503


class AssayWarning(UserWarning):
    """A result is undefined or degraded (for example: one class only in a segment)."""
