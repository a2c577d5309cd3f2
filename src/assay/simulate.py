"""Synthetic production data for demos and tests: a fraud classifier's two windows.

The reference window is what the model was validated on. In the current window the
transaction ``amount`` of one customer group has shifted, the ``country`` mix has moved,
and the model has degraded on the ``partner`` channel (its scores there carry less
signal), so an evaluation should find exactly those.

>>> ref, cur = fraud_windows(1000, seed=1)
>>> ref.num_rows, sorted(set(cur.column("channel").to_pylist()))
(1000, ['app', 'partner', 'web'])
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa

COUNTRIES = np.array(["DE", "FR", "GB", "NL", "ES", "IT", "PL", "US"])
CHANNELS = np.array(["web", "app", "partner"])
FEATURES = ("amount", "age", "tenure_years", "device_score", "hour", "country")
DECISION_THRESHOLD = 0.1  # the fraud team reviews every transaction scored at 0.1 or more


def fraud_windows(rows: int, seed: int = 7) -> tuple[pa.Table, pa.Table]:
    """Return (reference, current) tables of ``rows`` scored transactions each."""
    rng = np.random.default_rng(seed)
    reference = _window(rng, rows, drifted=False, start_id=0)
    current = _window(rng, rows, drifted=True, start_id=rows)
    return reference, current


def _window(rng: np.random.Generator, n: int, *, drifted: bool, start_id: int) -> pa.Table:
    country_p = np.array([0.3, 0.2, 0.15, 0.1, 0.1, 0.08, 0.05, 0.02])
    if drifted:  # a marketing push brings many more US customers
        country_p = np.array([0.22, 0.15, 0.12, 0.08, 0.08, 0.06, 0.05, 0.24])
    country = rng.choice(COUNTRIES, size=n, p=country_p)
    channel = rng.choice(CHANNELS, size=n, p=[0.5, 0.35, 0.15])
    age = np.clip(rng.normal(41, 12, n), 18, 90).round()
    amount = rng.lognormal(3.2, 0.9, n)
    if drifted:  # the younger customers' transaction amounts have grown
        young = age < 38
        amount[young] *= 2.5
    tenure = rng.exponential(3.0, n)
    device_score = rng.beta(2, 5, n)
    device_score[rng.uniform(size=n) < 0.03] = np.nan  # the device SDK sometimes fails
    hour = rng.integers(0, 24, n)

    logit = (
        -4.2
        + 0.9 * (np.log(amount) - 3.2)
        - 0.25 * tenure
        + 2.0 * np.nan_to_num(device_score, nan=0.3)
        + 0.6 * (hour < 6)
        + 0.5 * (country == "US")
    )
    p_true = 1.0 / (1.0 + np.exp(-logit))
    target = (rng.uniform(size=n) < p_true).astype(np.int8)
    noise = rng.normal(0, 0.35, n)
    if drifted:  # the partner integration changed: the model's signal there is weak
        partner = channel == "partner"
        noise[partner] = rng.normal(0, 1.6, int(partner.sum()))
    score = 1.0 / (1.0 + np.exp(-(logit + noise)))
    prediction = (score >= DECISION_THRESHOLD).astype(np.int8)
    return pa.table(
        {
            "transaction_id": np.arange(start_id, start_id + n),
            "amount": amount.round(2),
            "age": age,
            "tenure_years": tenure.round(2),
            "device_score": device_score,
            "hour": hour,
            "country": country,
            "channel": channel,
            "score": score,
            "prediction": prediction,
            "is_fraud": target,
        }
    )


def production_stream(
    days: int = 14,
    per_day: int = 4000,
    *,
    drift_day: int = 8,
    label_delay_days: int = 3,
    end: datetime | None = None,
    seed: int = 11,
) -> tuple[pa.Table, pa.Table]:
    """A fraud model's predictions over ``days`` days, and labels that arrive later.

    From ``drift_day`` on, the current-window drift of :func:`fraud_windows` applies
    (amounts grow, the country mix moves, the partner channel degrades). Returns
    (predictions, labels); label timestamps are ``label_delay_days`` after the prediction,
    plus up to a day. Timestamps end at ``end`` (default: now, to the hour).

    >>> preds, labels = production_stream(days=2, per_day=10, drift_day=1)
    >>> preds.num_rows, labels.num_rows, preds.column_names[:3]
    (20, 20, ['id', 'version', 'timestamp'])
    """
    rng = np.random.default_rng(seed)
    end = end or datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = (end - timedelta(days=days)).replace(hour=0)  # whole UTC days
    parts = []
    for day in range(days):
        window = _window(rng, per_day, drifted=day >= drift_day, start_id=day * per_day)
        offsets = np.sort(rng.uniform(0, 86_400, per_day))
        stamps = [start + timedelta(days=day, seconds=float(s)) for s in offsets]
        parts.append(
            window.append_column("timestamp", pa.array(stamps, pa.timestamp("us", tz="UTC")))
        )
    table = pa.concat_tables(parts)
    ids = pa.array([f"tx-{i}" for i in table.column("transaction_id").to_pylist()])
    predictions = pa.table(
        {
            "id": ids,
            "version": pa.array(["v7"] * table.num_rows),
            "timestamp": table.column("timestamp"),
            "score": table.column("score"),
            "prediction": table.column("prediction").cast(pa.float64()),
            **{c: table.column(c) for c in FEATURES},
            "channel": table.column("channel"),
        }
    )
    delay = timedelta(days=label_delay_days)
    label_stamps = [
        t + delay + timedelta(seconds=float(s))
        for t, s in zip(
            table.column("timestamp").to_pylist(),
            rng.uniform(0, 86_400, table.num_rows),
            strict=True,
        )
    ]
    labels = pa.table(
        {
            "id": ids,
            "label": table.column("is_fraud").cast(pa.float64()),
            "timestamp": pa.array(label_stamps, pa.timestamp("us", tz="UTC")),
        }
    )
    return predictions, labels
