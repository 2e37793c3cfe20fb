"""The ledger's record schema, version SCHEMA_VERSION: three tables of Parquet files.

- `decisions`: one row per transaction decided by one model (the champion's answer, and a
  shadowed or canary challenger's decision on the same transaction as a row of its own).
- `refusals`: one row per refused request (status, reason, key id).
- `outcomes`: one row per reported outcome (a chargeback or an investigator's review).

Each table is partitioned by day, Hive style (`decisions/date=YYYY-MM-DD/<file>.parquet`), the
layout DuckDB, Athena, Spark and Trino read as one table. Every row carries `schema_version`.
docs/LEDGER.md documents every field and the joins.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from operator import attrgetter
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from fraud_model.features import FEATURE_NAMES

SCHEMA_VERSION = 1
# What a request id may be (the service refuses any other, serve_app.request_headers): ids are
# copied into every record and log line.
MAX_REQUEST_ID = 128
REQUEST_ID_PATTERN = rf"^[A-Za-z0-9._:\-]{{1,{MAX_REQUEST_ID}}}$"
# The most transactions one request may hold (the app's max_transactions_per_request at most).
MAX_POSITIONS = 100_000

DECISIONS, REFUSALS, OUTCOMES = "decisions", "refusals", "outcomes"
TABLES = (DECISIONS, REFUSALS, OUTCOMES)
PARTITION = "date"  # the Hive partition column: the UTC day of `time` (`received_at` for outcomes)
# How the service turns a score into a decision; recorded so that a later rule is told apart.
DECISION_RULE = "fraud_probability >= threshold"
AMOUNT_INDEX = FEATURE_NAMES.index("Amount")
Role = Literal["champion", "challenger"]
_TIME = pa.timestamp("us", tz="UTC")

DECISIONS_SCHEMA = pa.schema([
    ("schema_version", pa.int16(), False),
    ("time", _TIME, False),
    ("request_id", pa.string(), False),
    ("position", pa.int32(), False),
    ("transactions", pa.int32(), False),
    ("route", pa.string(), False),
    ("role", pa.string(), False),
    ("served", pa.bool_(), False),
    ("mode", pa.string()),
    ("model_version", pa.string(), False),
    ("score", pa.float64(), False),
    ("threshold", pa.float64(), False),
    ("decision_rule", pa.string(), False),
    ("is_fraud", pa.bool_(), False),
    ("amount", pa.float64(), False),
    ("key_id", pa.string()),
    ("latency_ms", pa.float64()),
    ("features", pa.list_(pa.float32(), len(FEATURE_NAMES))),
])  # fmt: skip

REFUSALS_SCHEMA = pa.schema([
    ("schema_version", pa.int16(), False),
    ("time", _TIME, False),
    ("request_id", pa.string()),
    ("route", pa.string(), False),
    ("status", pa.int16(), False),
    ("reason", pa.string(), False),
    ("key_id", pa.string()),
    ("latency_ms", pa.float64()),
])  # fmt: skip

OUTCOMES_SCHEMA = pa.schema([
    ("schema_version", pa.int16(), False),
    ("request_id", pa.string(), False),
    ("position", pa.int32(), False),
    ("is_fraud", pa.bool_(), False),
    ("source", pa.string(), False),
    ("reported_at", _TIME, False),
    ("received_at", _TIME, False),
])  # fmt: skip

SCHEMAS = {DECISIONS: DECISIONS_SCHEMA, REFUSALS: REFUSALS_SCHEMA, OUTCOMES: OUTCOMES_SCHEMA}


@dataclass(slots=True)
class Decision:
    """One model's decisions on the transactions of one request (one row each in `decisions`).

    `scores`, `decisions` and `amounts` are in the request's order (a single transaction: one
    each); `features`, the request's rows, is kept only when the writer records features. Not
    frozen (a frozen dataclass costs several times as much to build, on the request path); the
    writer holds it until it is written, so nothing may change it after `append`.
    """

    request_id: str
    route: str
    received_at: float  # time.time() when the request arrived: the same on every role's record
    model_version: str
    threshold: float
    scores: Sequence[float] | np.ndarray
    decisions: Sequence[bool] | np.ndarray
    amounts: Sequence[float] | np.ndarray
    role: Role = "champion"
    served: bool = True
    mode: str | None = None  # "shadow" or "canary" where a challenger was involved
    key_id: str | None = None
    latency_ms: float | None = None
    features: Sequence[Sequence[float]] | np.ndarray | None = None
    decision_rule: str = DECISION_RULE

    @property
    def records(self) -> int:
        return len(self.scores)


@dataclass(slots=True)
class Refusal:
    """A refused request: one row in `refusals`."""

    route: str
    received_at: float
    status: int
    reason: str
    request_id: str | None = None
    key_id: str | None = None
    latency_ms: float | None = None

    @property
    def records(self) -> int:
        return 1


Record = Decision | Refusal


def amounts_of(rows: Sequence[Sequence[float]] | np.ndarray) -> list[float] | np.ndarray:
    """Each row's `Amount` (rows in the model's feature order, as the service scores them)."""
    if isinstance(rows, np.ndarray):
        return rows[:, AMOUNT_INDEX]
    return [row[AMOUNT_INDEX] for row in rows]


def day_of(timestamp: float) -> date:
    return datetime.fromtimestamp(timestamp, UTC).date()


_SCORES = attrgetter("scores")
_RECEIVED_AT = attrgetter("received_at")


def decisions_table(records: Sequence[Decision], with_features: bool) -> pa.Table:
    """The `decisions` rows of `records`, one per transaction.

    Built a column at a time (one pass over the records per column, in C where it can be): the
    writer's thread holds the GIL while it builds, and the event loop serving requests waits
    for it meanwhile.
    """
    per_request = ("request_id", "route", "role", "served", "mode", "model_version", "threshold",
                   "decision_rule", "key_id", "latency_ms")  # fmt: skip
    counts = np.fromiter(map(len, map(_SCORES, records)), dtype=np.int64, count=len(records))
    total = int(counts.sum())
    received = np.fromiter(map(_RECEIVED_AT, records), dtype=np.float64, count=len(records))
    times = np.rint(received * 1e6).astype(np.int64)
    if total == len(records):  # one transaction per record: the scoring traffic's usual case
        scores = [record.scores[0] for record in records]
        flags = [record.decisions[0] for record in records]
        amounts = [record.amounts[0] for record in records]
        each_row: pa.Array | None = None
    else:
        scores, flags, amounts = [], [], []
        for record in records:
            if len(record.scores) == 1:  # no numpy call for the single ones among batches
                scores.append(record.scores[0])
                flags.append(record.decisions[0])
                amounts.append(record.amounts[0])
                continue
            scores.extend(np.asarray(record.scores, dtype=np.float64).tolist())
            flags.extend(np.asarray(record.decisions, dtype=bool).tolist())
            amounts.extend(np.asarray(record.amounts, dtype=np.float64).tolist())
        each_row = pa.array(np.repeat(np.arange(len(records)), counts))
    starts = np.cumsum(counts) - counts
    arrays: dict[str, Any] = {
        "schema_version": np.full(total, SCHEMA_VERSION, dtype=np.int16),
        "time": np.repeat(times, counts),
        "position": (np.arange(total) - np.repeat(starts, counts)).astype(np.int32),
        "transactions": np.repeat(counts.astype(np.int32), counts),
        "score": np.asarray(scores, dtype=np.float64),
        "is_fraud": np.asarray(flags, dtype=bool),
        "amount": np.asarray(amounts, dtype=np.float64),
        "features": _features(records, total) if with_features else pa.nulls(total),
    }
    for name in per_request:
        values = list(map(attrgetter(name), records))
        # A NaN latency is stored as null (from_pandas), as `_optional` does for refusals.
        field_type = DECISIONS_SCHEMA.field(name).type
        column = pa.array(values, type=field_type, from_pandas=name == "latency_ms")
        arrays[name] = column if each_row is None else column.take(each_row)
    return pa.Table.from_arrays(
        [
            arrays[field.name]
            if isinstance(arrays[field.name], pa.Array)
            else pa.array(arrays[field.name], type=field.type)
            for field in DECISIONS_SCHEMA
        ],
        schema=DECISIONS_SCHEMA,
    )


def refusals_table(records: Sequence[Refusal]) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "schema_version": SCHEMA_VERSION,
                "time": round(r.received_at * 1e6),
                "request_id": r.request_id,
                "route": r.route,
                "status": r.status,
                "reason": r.reason,
                "key_id": r.key_id,
                "latency_ms": _optional(r.latency_ms),
            }
            for r in records
        ],
        schema=REFUSALS_SCHEMA,
    )


def _optional(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value


def _features(records: Sequence[Decision], total: int) -> pa.Array:
    width = len(FEATURE_NAMES)
    flat, valid = [], []
    for record in records:
        rows = record.features
        if rows is None:
            flat.append(np.zeros((record.records, width), dtype=np.float32))
            valid.append(np.zeros(record.records, dtype=bool))
        else:
            flat.append(np.asarray(rows, dtype=np.float32).reshape(record.records, width))
            valid.append(np.ones(record.records, dtype=bool))
    values = pa.array(np.concatenate(flat).ravel() if flat else np.empty(0, np.float32))
    mask = pa.array(~np.concatenate(valid)) if valid else None
    return pa.FixedSizeListArray.from_arrays(values, width, mask=mask)
