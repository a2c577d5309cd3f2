"""The spans a monitor pass judges: closed tumbling windows and sliding windows.

Rollups hold whole UTC hours, so every span is whole hours:

- a **tumbling** window of size ``s`` is ``[k*s, (k+1)*s)`` counted from the epoch; the
  latest *closed* one is the last that ended by the pass's time;
- a **sliding** window of size ``s`` ends at the pass's time rounded up to the hour (it
  holds every row up to now, the current hour so far included) and spans ``s`` back;
- the **previous** window of either is the span of the same size just before it, which
  relative ``compare_to: previous`` conditions compare with.

>>> from datetime import UTC, datetime, timedelta
>>> now = datetime(2026, 11, 21, 10, 5, tzinfo=UTC)
>>> [t.isoformat() for t in latest_closed(now, timedelta(days=1))]
['2026-11-20T00:00:00+00:00', '2026-11-21T00:00:00+00:00']
>>> [t.isoformat() for t in sliding(now, timedelta(days=7))]
['2026-11-14T11:00:00+00:00', '2026-11-21T11:00:00+00:00']
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
Span = tuple[datetime, datetime]


def window_start(moment: datetime, size: timedelta) -> datetime:
    """The start of the tumbling window of ``size`` that holds ``moment``.

    >>> window_start(datetime(2026, 11, 21, 10, 5, tzinfo=UTC), HOUR).hour
    10
    """
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return EPOCH + ((moment - EPOCH) // size) * size


def latest_closed(now: datetime, size: timedelta) -> Span:
    """The last tumbling window of ``size`` that ended at or before ``now``."""
    end = window_start(now, size)
    return end - size, end


def sliding(now: datetime, size: timedelta) -> Span:
    """The sliding window of ``size`` ending at ``now`` rounded up to the hour."""
    end = window_start(now, HOUR)
    if end < now:
        end += HOUR
    return end - size, end


def previous(span: Span) -> Span:
    """The span of the same length just before ``span``.

    >>> a, b = previous((datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC)))
    >>> a.day, b.day
    (1, 2)
    """
    start, end = span
    return start - (end - start), start


__all__ = ["latest_closed", "previous", "sliding", "window_start"]
