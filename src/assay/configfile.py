"""Reading a YAML configuration file into a pydantic model, with errors that name the key.

>>> from pydantic import BaseModel
>>> class Demo(BaseModel):
...     size: int
>>> try:
...     validate_document(Demo, {"size": "big"}, hint="see the docs")
... except ConfigError as err:
...     print(err.field)
size
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from assay.errors import ConfigError

ModelT = TypeVar("ModelT", bound=BaseModel)


def read_yaml(path: str | Path) -> Any:
    """The parsed YAML document at ``path`` (``{}`` when empty)."""
    try:
        return yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read config {str(path)!r}: {err}", field="config") from err


def validate_document(model: type[ModelT], document: Any, *, hint: str) -> ModelT:
    """``model`` validated from ``document``; the first error names its key path."""
    try:
        return model.model_validate(document)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in first["loc"])
        where = where.replace(".[", "[") or "config"
        raise ConfigError(f"{where}: {first['msg']}", field=where, hint=hint) from err


def load_config(model: type[ModelT], path: str | Path, *, hint: str) -> ModelT:
    """Read and validate the YAML file at ``path``."""
    return validate_document(model, read_yaml(path), hint=hint)
