"""A synthetic decision ledger with known truth: for the report's tests and its timing at scale.

    uv run python -m benchmarks.ledger_data --ledger /tmp/ledger --decisions 10000000

Single transactions over `days` days from `start`: a champion (version `v1`, then `v2` from the
middle day on) decides every one, a challenger (`c1`) shadows a share of them; frauds are drawn
more often at high scores. Every champion alert gets a review 2 days later, every fraud the
champion missed a chargeback 60 days later, and a tenth of the chargebacks are sent twice.
"""

import argparse
import io
import sys
import time
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ledger.files import LedgerFiles, open_files, partition_key
from ledger.schema import DECISION_RULE, DECISIONS, DECISIONS_SCHEMA, OUTCOMES, OUTCOMES_SCHEMA

THRESHOLD, CHALLENGER_THRESHOLD = 0.5, 0.45
REVIEW_AFTER, CHARGEBACK_AFTER = timedelta(days=2), timedelta(days=60)


@dataclass(frozen=True)
class Truth:
    """One entry per transaction."""

    request_ids: np.ndarray
    days: np.ndarray  # numpy datetime64[D]
    seconds: np.ndarray  # arrival, seconds since the epoch
    versions: np.ndarray
    scores: np.ndarray
    flagged: np.ndarray
    fraud: np.ndarray
    amounts: np.ndarray
    shadowed: np.ndarray  # the challenger scored it too
    challenger_scores: np.ndarray
    challenger_flagged: np.ndarray


def synthetic_ledger(
    uri: str,
    *,
    start: date,
    days: int,
    per_day: int,
    seed: int = 0,
    challenger_share: float = 0.2,
    files_per_day: int = 2,
) -> Truth:
    """Write decisions and outcomes to the ledger at `uri`; the truth they were drawn from."""
    rng = np.random.default_rng(seed)
    files = open_files(uri)
    parts = []
    for offset in range(days):
        day = start + timedelta(days=offset)
        truth = _day(rng, day, per_day, "v1" if offset < days // 2 else "v2", challenger_share)
        for part, rows in enumerate(np.array_split(np.arange(per_day), files_per_day)):
            key = partition_key(DECISIONS, day, f"synthetic-{seed}-{part}.parquet")
            files.put_new(key, _parquet(_decisions(truth, rows)))
        parts.append(truth)
    truth = Truth(**{f.name: np.concatenate([getattr(p, f.name) for p in parts])
                     for f in fields(Truth)})  # fmt: skip
    _outcomes(files, truth, rng, seed)
    return truth


def _day(rng: np.random.Generator, day: date, n: int, version: str, share: float) -> Truth:
    scores = rng.beta(0.3, 6.0, n)
    challenger_scores = np.clip(scores + rng.normal(0, 0.05, n), 0, 1)
    shadowed = rng.random(n) < share
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
    return Truth(
        request_ids=np.char.add(f"t{day:%Y%m%d}-", np.arange(n).astype(str)).astype(object),
        days=np.full(n, np.datetime64(day, "D")),
        seconds=midnight + np.sort(rng.random(n)) * 86_399,
        versions=np.full(n, version, dtype=object),
        scores=scores,
        flagged=scores >= THRESHOLD,
        fraud=rng.random(n) < np.clip(scores * 0.8, 0.0005, 1),
        amounts=np.round(rng.lognormal(3.5, 1.2, n), 2),
        shadowed=shadowed,
        challenger_scores=challenger_scores,
        challenger_flagged=shadowed & (challenger_scores >= CHALLENGER_THRESHOLD),
    )


def _decisions(truth: Truth, rows: np.ndarray) -> pa.Table:
    """The champion's row of every transaction, then the challenger's of the shadowed ones."""
    shadow = rows[truth.shadowed[rows]]
    n, m = len(rows), len(shadow)
    index = np.concatenate([rows, shadow])
    challenger = np.r_[np.zeros(n, bool), np.ones(m, bool)]
    columns = {
        "schema_version": np.ones(n + m, np.int16),
        "time": (truth.seconds[index] * 1e6).astype(np.int64),
        "request_id": truth.request_ids[index],
        "position": np.zeros(n + m, np.int32),
        "transactions": np.ones(n + m, np.int32),
        "route": np.full(n + m, "/api/v1/predict", dtype=object),
        "role": np.where(challenger, "challenger", "champion").astype(object),
        "served": ~challenger,
        "mode": np.where(challenger | truth.shadowed[index], "shadow", None),
        "model_version": np.where(challenger, "c1", truth.versions[index]).astype(object),
        "score": np.where(challenger, truth.challenger_scores[index], truth.scores[index]),
        "threshold": np.where(challenger, CHALLENGER_THRESHOLD, THRESHOLD),
        "decision_rule": np.full(n + m, DECISION_RULE, dtype=object),
        "is_fraud": np.where(challenger, truth.challenger_flagged[index], truth.flagged[index]),
        "amount": truth.amounts[index],
        "key_id": np.full(n + m, "checkout", dtype=object),
        "latency_ms": np.full(n + m, 4.0),
        "features": pa.nulls(n + m, DECISIONS_SCHEMA.field("features").type),
    }
    return pa.Table.from_arrays(
        [pa.array(columns[f.name], type=f.type, from_pandas=True) if f.name != "features"
         else columns[f.name] for f in DECISIONS_SCHEMA],
        schema=DECISIONS_SCHEMA,
    )  # fmt: skip


def _outcomes(files: LedgerFiles, truth: Truth, rng: np.random.Generator, seed: int) -> None:
    reviewed = np.flatnonzero(truth.flagged)
    charged = np.flatnonzero(truth.fraud & ~truth.flagged)
    again = charged[rng.random(len(charged)) < 0.1]
    decided, review_s = truth.seconds, REVIEW_AFTER.total_seconds()
    rows = [
        (reviewed, "review", truth.fraud[reviewed], decided[reviewed] + review_s),
        (charged, "chargeback", np.ones(len(charged), bool),
         decided[charged] + CHARGEBACK_AFTER.total_seconds()),
        (again, "chargeback", np.ones(len(again), bool),
         decided[again] + CHARGEBACK_AFTER.total_seconds()),
    ]  # fmt: skip
    for part, (index, source, verdict, reported) in enumerate(rows):
        if not len(index):
            continue
        received = datetime.fromtimestamp(float(reported.max()), UTC)
        table = pa.table(
            {
                "schema_version": np.ones(len(index), np.int16),
                "request_id": truth.request_ids[index],
                "position": np.zeros(len(index), np.int32),
                "is_fraud": verdict,
                "source": np.full(len(index), source, dtype=object),
                "reported_at": (reported * 1e6).astype(np.int64),
                "received_at": np.full(len(index), int(received.timestamp() * 1e6)),
            },
            schema=OUTCOMES_SCHEMA,
        )
        name = f"synthetic-{seed}-{part}.parquet"
        files.put_new(partition_key(OUTCOMES, received.date(), name), _parquet(table))


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ledger", required=True, help="a new directory or s3:// prefix")
    parser.add_argument("--decisions", type=int, default=10_000_000, help="champion decisions")
    parser.add_argument("--days", type=int, default=200)
    parser.add_argument("--start", type=date.fromisoformat, default=date(2026, 1, 5))
    args = parser.parse_args()
    started = time.perf_counter()
    truth = synthetic_ledger(args.ledger, start=args.start, days=args.days,
                             per_day=args.decisions // args.days)  # fmt: skip
    sys.stdout.write(
        f"{len(truth.scores):,} transactions ({int(truth.shadowed.sum()):,} shadowed) written to "
        f"{args.ledger} in {time.perf_counter() - started:.1f} s\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
