"""The run record every evaluation and gate decision carries: what ran, on what, when.

>>> import time
>>> record = run_record({"task": "binary"}, {}, time.time())
>>> sorted(record), len(record["config_hash"])
(['assay_version', 'config', 'config_hash', 'duration_seconds', 'inputs', 'started_at'], 16)
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from typing import Any

from assay import __version__
from assay.engine.sources import Source


def run_record(
    config: dict[str, Any],
    inputs: Mapping[str, Source | None],
    started: float,
    **extra: Any,
) -> dict[str, Any]:
    """Package version, configuration and its hash, inputs' fingerprints, start, duration."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return {
        "assay_version": __version__,
        **extra,
        "config": config,
        "config_hash": hashlib.sha256(blob).hexdigest()[:16],
        "inputs": {
            role: {"source": source.description, "fingerprint": source.fingerprint}
            for role, source in inputs.items()
            if source is not None
        },
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "duration_seconds": round(time.time() - started, 3),
    }
