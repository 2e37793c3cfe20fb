"""Outcomes in: chargebacks and investigators' reviews, joined later with the decisions.

`OutcomeBatch` is the body of `POST /api/v1/outcomes` (at most MAX_OUTCOMES_PER_CALL);
`record_outcomes` writes the outcomes whose decision the ledger holds as one file of the
`outcomes` table, and reports the others back as unknown (they are not kept). To find them it
reads the `request_id` and `position` columns of the `decisions` partitions from
`outcome_lookback_days` before the earliest `reported_at` to the day after the latest: the cost
is one scan of those columns per call, whatever the number of outcomes in it, so bulk loads go
through the command below (one scan per file):

    python -m ledger.outcomes load chargebacks.csv --ledger s3://bucket/ledger

The same outcome sent twice is written twice and counted once: the report keeps one outcome
per (request_id, position, source).
"""

import argparse
import csv
import io
import sys
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
)

from ledger.files import LedgerFiles, open_files, partition_key, table_dataset, table_files
from ledger.schema import (
    DECISIONS,
    MAX_POSITIONS,
    OUTCOMES,
    OUTCOMES_SCHEMA,
    REQUEST_ID_PATTERN,
    SCHEMA_VERSION,
)
from ledger.settings import LedgerSettings

MAX_OUTCOMES_PER_CALL = 1_000
FILE_OUTCOMES = 1_000_000  # outcomes per file when loading in bulk
Source = Literal["chargeback", "review"]


class Outcome(BaseModel):
    """What really happened to one decided transaction."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    request_id: str = Field(pattern=REQUEST_ID_PATTERN, description="The decision's request id.")
    position: int = Field(
        0,
        ge=0,
        lt=MAX_POSITIONS,
        description="The transaction's position in its request (0 for a single one).",
    )
    is_fraud: StrictBool = Field(description="Whether the transaction was fraud.")
    source: Source = Field(
        description="`chargeback` (the issuer confirmed fraud) or `review` (an investigator's "
        "verdict on an alert)."
    )
    reported_at: AwareDatetime = Field(description="When the outcome was established.")


class OutcomeBatch(BaseModel):
    """The body of POST /api/v1/outcomes."""

    model_config = ConfigDict(extra="forbid")

    outcomes: list[Outcome] = Field(min_length=1, max_length=MAX_OUTCOMES_PER_CALL)


class UnknownOutcome(BaseModel):
    request_id: str
    position: int


class OutcomeReceipt(BaseModel):
    """What became of the outcomes: written, or unknown (no such decision in the ledger)."""

    recorded: int = Field(description="Outcomes written (duplicates within the call once).")
    unknown: list[UnknownOutcome] = Field(
        description="Outcomes whose (request_id, position) no decision in the scanned days has; "
        "not kept."
    )
    scanned_days: list[date] = Field(description="First and last decisions day scanned.")
    scanned_files: int
    scanned_rows: int


def record_outcomes(
    outcomes: Sequence[Outcome],
    settings: LedgerSettings | None = None,
    *,
    files: LedgerFiles | None = None,
    now: datetime | None = None,
) -> OutcomeReceipt:
    """Write the outcomes whose decision is in the ledger; report the others.

    Raises LedgerStoreError if the store cannot be written (nothing was recorded then).
    """
    settings = settings if settings is not None else LedgerSettings()
    files = files if files is not None else open_files(settings.location)
    received = now if now is not None else datetime.now(UTC)
    unique = list(dict.fromkeys(outcomes))
    if not unique:
        raise ValueError("no outcomes to record")
    first = min(o.reported_at for o in unique).astimezone(UTC).date()
    last = max(o.reported_at for o in unique).astimezone(UTC).date()
    # Clamped to the calendar: an outcome dated in year 1 or 9999 is looked for, and not found.
    window = (
        first - min(timedelta(days=settings.outcome_lookback_days), first - date.min),
        last + min(timedelta(days=1), date.max - last),
    )
    known, scanned_files, scanned_rows = _known_keys(files, unique, window)
    kept = [o for o in unique if (o.request_id, o.position) in known]
    for start in range(0, len(kept), FILE_OUTCOMES):
        _write(files, kept[start : start + FILE_OUTCOMES], received)
    return OutcomeReceipt(
        recorded=len(kept),
        unknown=[
            UnknownOutcome(request_id=request_id, position=position)
            for request_id, position in dict.fromkeys((o.request_id, o.position) for o in unique)
            if (request_id, position) not in known
        ],
        scanned_days=list(window),
        scanned_files=scanned_files,
        scanned_rows=scanned_rows,
    )


def _known_keys(
    files: LedgerFiles, outcomes: Sequence[Outcome], window: tuple[date, date]
) -> tuple[set[tuple[str, int]], int, int]:
    paths = [
        path
        for day, day_paths in table_files(files, DECISIONS).items()
        if window[0] <= day <= window[1]
        for path in day_paths
    ]
    if not paths:
        return set(), 0, 0
    dataset = table_dataset(files, DECISIONS, paths)
    ids = pa.array(sorted({o.request_id for o in outcomes}), type=pa.string())
    found = dataset.to_table(
        columns=["request_id", "position"], filter=pc.field("request_id").isin(ids)
    )
    known = set(zip(found["request_id"].to_pylist(), found["position"].to_pylist(), strict=True))
    return known, len(paths), dataset.count_rows()


def _write(files: LedgerFiles, outcomes: Sequence[Outcome], received: datetime) -> None:
    table = pa.Table.from_pylist(
        [
            {"schema_version": SCHEMA_VERSION, **o.model_dump(), "received_at": received}
            for o in outcomes
        ],
        schema=OUTCOMES_SCHEMA,
    ).replace_schema_metadata({"fraud_ledger.schema_version": str(SCHEMA_VERSION)})
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    name = f"outcomes-{received.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:16]}.parquet"
    files.put_new(partition_key(OUTCOMES, received.astimezone(UTC).date(), name), sink.getvalue())


# The bulk loader.

CSV_COLUMNS = ("request_id", "position", "is_fraud", "source", "reported_at")
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


class OutcomeFileError(ValueError):
    """A line of an outcomes file is not a valid outcome; names the line and the field."""


def read_outcomes_csv(lines: Iterable[str]) -> list[Outcome]:
    """Outcomes from CSV with a header naming CSV_COLUMNS (`position` may be left out: 0)."""
    reader = csv.DictReader(lines)
    missing = {"request_id", "is_fraud", "source", "reported_at"} - set(reader.fieldnames or [])
    if missing:
        raise OutcomeFileError(f"the header lacks {sorted(missing)} (columns: {CSV_COLUMNS})")
    outcomes = []
    for line, row in enumerate(reader, start=2):
        flag = _BOOLEANS.get((row.get("is_fraud") or "").strip().lower())
        if flag is None:
            raise OutcomeFileError(f"line {line}: is_fraud must be true, false, 1 or 0")
        try:
            outcomes.append(
                Outcome.model_validate(
                    {
                        "request_id": row["request_id"],
                        "position": int(row.get("position") or 0),
                        "is_fraud": flag,
                        "source": row["source"],
                        "reported_at": row["reported_at"],
                    }
                )
            )
        except (ValidationError, ValueError) as error:
            raise OutcomeFileError(f"line {line}: {_first_problem(error)}") from None
    if not outcomes:
        raise OutcomeFileError("the file holds no outcomes")
    return outcomes


def _first_problem(error: Exception) -> str:
    if isinstance(error, ValidationError):
        problem = error.errors()[0]
        return f"{'.'.join(map(str, problem['loc']))}: {problem['msg']}"
    return f"position: {error}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ledger.outcomes", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    load = commands.add_parser("load", help="load a CSV of outcomes into the ledger")
    load.add_argument("file", type=Path, help=f"CSV with a header: {', '.join(CSV_COLUMNS)}")
    load.add_argument("--ledger", default=LedgerSettings().location, help="the ledger's URI")
    load.add_argument("--unknown-out", type=Path, help="write the unknown outcomes here as CSV")
    args = parser.parse_args(argv)
    try:
        with args.file.open(newline="", encoding="utf-8") as handle:
            outcomes = read_outcomes_csv(handle)
    except (OSError, OutcomeFileError) as error:
        sys.stderr.write(f"{args.file}: {error}\n")
        return 2
    receipt = record_outcomes(outcomes, LedgerSettings(location=args.ledger))
    sys.stdout.write(
        f"{receipt.recorded} outcomes recorded in {args.ledger}; {len(receipt.unknown)} unknown "
        f"(decisions scanned: {receipt.scanned_rows} rows in {receipt.scanned_files} files, "
        f"{receipt.scanned_days[0]} to {receipt.scanned_days[1]})\n"
    )
    if args.unknown_out is not None and receipt.unknown:
        with args.unknown_out.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["request_id", "position"])
            writer.writerows((u.request_id, u.position) for u in receipt.unknown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
