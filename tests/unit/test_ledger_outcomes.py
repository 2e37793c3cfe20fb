"""Outcomes into the ledger: validation, unknown request ids reported back, the bulk loader."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import numpy as np
import pytest
from pydantic import ValidationError

from ledger.files import open_files, table_dataset
from ledger.outcomes import (
    MAX_OUTCOMES_PER_CALL,
    Outcome,
    OutcomeBatch,
    main,
    record_outcomes,
)
from ledger.schema import OUTCOMES, Decision
from ledger.settings import LedgerSettings
from ledger.writer import LedgerWriter

DECIDED = datetime(2026, 9, 1, 12, tzinfo=UTC)


def ledger_with_decisions(location: str) -> LedgerSettings:
    """A single transaction `single` and a batch of three `batch` decided on DECIDED, and `old`
    a year earlier."""
    settings = LedgerSettings(location=location)
    writer = LedgerWriter(settings)
    for request_id, rows, when in (
        ("single", 1, DECIDED), ("batch", 3, DECIDED), ("old", 1, DECIDED - timedelta(days=365))
    ):  # fmt: skip
        scores = np.full(rows, 0.7)
        writer.append(Decision(request_id, "/api/v1/predict", when.timestamp(), "v1", 0.5,
                               scores, scores >= 0.5, np.full(rows, 10.0)))  # fmt: skip
    assert writer.close().written == 5
    return settings


def outcome(request_id: str, position: int = 0, **changes: object) -> Outcome:
    reported = DECIDED + timedelta(days=60)
    fields = {"request_id": request_id, "position": position, "is_fraud": True,
              "source": "chargeback", "reported_at": reported}  # fmt: skip
    return Outcome.model_validate(fields | changes)


def stored_outcomes(settings: LedgerSettings) -> list[tuple[str, int, str]]:
    rows = table_dataset(open_files(settings.location), OUTCOMES).to_table().to_pylist()
    return sorted((row["request_id"], row["position"], row["source"]) for row in rows)


def test_known_outcomes_are_written_and_unknown_ones_reported_back(tmp_path: Path) -> None:
    settings = ledger_with_decisions(str(tmp_path))
    receipt = record_outcomes(
        [
            outcome("single"),
            outcome("batch", 2, source="review", is_fraud=False),
            outcome("batch", 3),  # the batch had positions 0 to 2
            outcome("nobody"),
            outcome("old"),  # decided before the lookback window
            outcome("single"),  # the same outcome again: once
        ],
        settings,
    )
    assert receipt.recorded == 2
    assert [(u.request_id, u.position) for u in receipt.unknown] == [
        ("batch", 3), ("nobody", 0), ("old", 0)
    ]  # fmt: skip
    assert stored_outcomes(settings) == [("batch", 2, "review"), ("single", 0, "chargeback")]
    # The scan covered the lookback window before the report and no more: one day of files.
    reported = (DECIDED + timedelta(days=60)).date()
    assert receipt.scanned_days == [reported - timedelta(days=180), reported + timedelta(days=1)]
    assert (receipt.scanned_files, receipt.scanned_rows) == (1, 4)


def test_outcomes_go_to_s3_like_to_a_directory(s3_env: dict[str, str]) -> None:
    boto3.client("s3").create_bucket(Bucket="outcomes-test")
    settings = ledger_with_decisions("s3://outcomes-test/ledger")
    receipt = record_outcomes([outcome("batch", 1), outcome("nobody")], settings)
    assert (receipt.recorded, len(receipt.unknown)) == (1, 1)
    assert stored_outcomes(settings) == [("batch", 1, "chargeback")]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"is_fraud": "yes"}, "is_fraud"),
        ({"source": "email"}, "source"),
        ({"reported_at": "2026-10-01T00:00:00"}, "reported_at"),  # no time zone
        ({"position": -1}, "position"),
        ({"request_id": ""}, "request_id"),
        ({"amount": 3}, "amount"),
    ],
)
def test_a_bad_outcome_is_refused_naming_the_field(change: dict, field: str) -> None:
    body = {"request_id": "r", "is_fraud": True, "source": "review",
            "reported_at": "2026-10-01T00:00:00Z"} | change  # fmt: skip
    with pytest.raises(ValidationError) as raised:
        OutcomeBatch.model_validate_json(json.dumps({"outcomes": [body]}))
    assert raised.value.errors()[0]["loc"][-1] == field


def test_a_call_takes_at_most_a_thousand_outcomes() -> None:
    one = {"request_id": "r", "is_fraud": True, "source": "review",
           "reported_at": "2026-10-01T00:00:00Z"}  # fmt: skip
    OutcomeBatch.model_validate({"outcomes": [one] * MAX_OUTCOMES_PER_CALL})
    with pytest.raises(ValidationError, match="at most 1000"):
        OutcomeBatch.model_validate({"outcomes": [one] * (MAX_OUTCOMES_PER_CALL + 1)})
    with pytest.raises(ValidationError):
        OutcomeBatch.model_validate({"outcomes": []})


def ledger_and_csv(tmp_path: Path, *lines: str) -> tuple[LedgerSettings, Path]:
    csv_file = tmp_path / "outcomes.csv"
    csv_file.write_text("\n".join(lines) + "\n")
    return ledger_with_decisions(str(tmp_path / "ledger")), csv_file


def test_the_bulk_loader_records_a_csv_and_lists_the_unknown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings, csv_file = ledger_and_csv(
        tmp_path,
        "request_id,position,is_fraud,source,reported_at",
        "single,,1,chargeback,2026-11-01T00:00:00Z",
        "batch,1,true,chargeback,2026-11-02T00:00:00+00:00",
        "ghost,0,1,chargeback,2026-11-02T00:00:00Z",
    )
    unknown_file = tmp_path / "unknown.csv"
    code = main(["load", str(csv_file), "--ledger", settings.location,
                 "--unknown-out", str(unknown_file)])  # fmt: skip
    assert code == 0
    assert capsys.readouterr().out.startswith(
        f"2 outcomes recorded in {settings.location}; 1 unknown"
    )
    assert unknown_file.read_text().splitlines() == ["request_id,position", "ghost,0"]
    assert stored_outcomes(settings) == [("batch", 1, "chargeback"), ("single", 0, "chargeback")]


def test_the_bulk_loader_names_the_bad_line_and_records_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings, csv_file = ledger_and_csv(
        tmp_path,
        "request_id,is_fraud,source,reported_at",
        "single,1,chargeback,2026-11-01T00:00:00Z",
        "batch,1,phone,2026-11-01T00:00:00Z",
    )
    assert main(["load", str(csv_file), "--ledger", settings.location]) == 2
    assert "line 3: source" in capsys.readouterr().err
    assert stored_outcomes(settings) == []
