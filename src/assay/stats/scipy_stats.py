"""``scipy.stats``, imported on first use, once, under a lock.

It takes about half a second to import, which Ray workers (they only build states) and
quick commands should not pay; and two threads importing it at the same moment can
deadlock on its circular imports (CPython's per-module import locks), as the local
engine's thread pool once did. Every use in the stats core goes through
:func:`scipy_stats`.

>>> scipy_stats().norm.ppf(0.5)
np.float64(0.0)
"""

from __future__ import annotations

import threading
from types import ModuleType

_lock = threading.Lock()
_module: ModuleType | None = None


def scipy_stats() -> ModuleType:
    """The ``scipy.stats`` module (imported by the first caller, the others wait)."""
    global _module
    if _module is None:
        with _lock:
            if _module is None:
                import scipy.stats

                _module = scipy.stats
    return _module
