"""The decision ledger's writer and its write-once files, locally and against a real S3 API (moto's
server in its own process, stopped and started again for the outage tests)."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from fraud_model.store import LocalLocation
from ledger.files import (
    LedgerFileExistsError,
    LocalFiles,
    S3Files,
    open_files,
    table_dataset,
    table_files,
)
from ledger.schema import DECISIONS, REFUSALS, SCHEMA_VERSION, Decision, Refusal
from ledger.settings import LedgerSettings
from ledger.writer import LedgerWriter
from tests.helpers import PROJECT_ROOT
from tests.moto_process import MotoProcess, moto_process
from tests.polling import wait_for

BUCKET = "fraud-ledger-test"
# A writer that writes only when told to (or at close): the tests decide when files appear.
IDLE = {"flush_interval_s": 3600.0, "put_timeout_s": 1.0, "put_attempts": 1}


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoProcess]:
    with moto_process() as server:
        yield server


@pytest.fixture
def s3_ledger(moto: MotoProcess, monkeypatch: pytest.MonkeyPatch, request) -> str:
    for name, value in moto.env().items():
        monkeypatch.setenv(name, value)
    make_bucket()
    return f"s3://{BUCKET}/{request.node.name[:40]}"


def make_bucket() -> None:
    client = boto3.client("s3")
    if BUCKET not in [b["Name"] for b in client.list_buckets().get("Buckets", [])]:
        client.create_bucket(Bucket=BUCKET)


def decision(request_id: str, received_at: float | None = None, rows: int = 1) -> Decision:
    scores = np.linspace(0.0, 1.0, rows)
    return Decision(
        request_id=request_id,
        route="/api/v1/predict" if rows == 1 else "/api/v1/predict/batch",
        received_at=time.time() if received_at is None else received_at,
        model_version="v1",
        threshold=0.5,
        scores=scores,
        decisions=scores >= 0.5,
        amounts=np.full(rows, 12.5),
        key_id="key-1",
        latency_ms=3.2,
    )


def test_single_transactions_are_written_to_the_day_each_arrived_on(tmp_path: Path) -> None:
    # Records are appended as answers complete, not as requests arrive: a slow request from
    # before midnight can sit between two from after it, and still belongs to its own day.
    writer = LedgerWriter(LedgerSettings(location=str(tmp_path), **IDLE))
    midnight = 1_780_012_800.0  # 2026-05-29 00:00:00 UTC
    late = decision("late", midnight - 0.01)
    late.latency_ms = float("nan")
    unknown = decision("unknown", midnight + 1)
    unknown.latency_ms = None
    for record in (decision("first", midnight + 0.5), late, unknown):
        writer.append(record)
    assert writer.close().written == 3
    files = table_files(open_files(str(tmp_path)), DECISIONS)
    assert [str(day) for day in files] == ["2026-05-28", "2026-05-29"]
    rows = table_dataset(open_files(str(tmp_path)), DECISIONS).to_table().to_pylist()
    by_id = {row["request_id"]: row for row in rows}
    assert [str(by_id[name]["date"]) for name in ("late", "first", "unknown")] == [
        "2026-05-28", "2026-05-29", "2026-05-29"
    ]  # fmt: skip
    assert by_id["first"]["latency_ms"] == 3.2
    assert by_id["late"]["latency_ms"] is None and by_id["unknown"]["latency_ms"] is None
    assert by_id["first"]["time"].timestamp() == midnight + 0.5
    assert all((row["position"], row["transactions"]) == (0, 1) for row in rows)


def stored_ids(uri: str) -> list[str]:
    table = table_dataset(open_files(uri), DECISIONS).to_table(columns=["request_id"])
    ids: list[str] = table.column("request_id").to_pylist()
    return ids


def test_records_become_a_date_partitioned_table_that_duckdb_reads(tmp_path: Path) -> None:
    writer = LedgerWriter(LedgerSettings(location=str(tmp_path), **IDLE), name="replica-a")
    day = 1_780_000_000.0  # 2026-05-28 20:26:40 UTC
    writer.append(decision("one", day))
    writer.append(decision("batch", day + 86_400, rows=3))
    writer.append(Refusal("/api/v1/predict", day, 401, "unauthorized", "nokey", None, 0.4))
    assert writer.close().written == 5
    files = table_files(open_files(str(tmp_path)), DECISIONS)
    assert [str(day) for day in files] == ["2026-05-28", "2026-05-29"]
    for paths in files.values():
        (path,) = paths
        assert Path(path).name.startswith("replica-a-")
        metadata = pq.read_schema(path).metadata
        assert metadata[b"fraud_ledger.schema_version"] == str(SCHEMA_VERSION).encode()
    rows = duckdb.sql(
        f"SELECT date, request_id, position, transactions, is_fraud, schema_version "
        f"FROM read_parquet('{tmp_path}/decisions/*/*.parquet', hive_partitioning=true) "
        "ORDER BY date, position"
    ).fetchall()
    assert [(str(r[0]), *r[1:]) for r in rows] == [
        ("2026-05-28", "one", 0, 1, False, SCHEMA_VERSION),
        ("2026-05-29", "batch", 0, 3, False, SCHEMA_VERSION),
        ("2026-05-29", "batch", 1, 3, True, SCHEMA_VERSION),
        ("2026-05-29", "batch", 2, 3, True, SCHEMA_VERSION),
    ]
    (refusal,) = table_dataset(open_files(str(tmp_path)), REFUSALS).to_table().to_pylist()
    assert (refusal["status"], refusal["reason"], refusal["request_id"]) == (
        401, "unauthorized", "nokey"
    )  # fmt: skip


def test_raw_features_are_kept_only_when_enabled(tmp_path: Path) -> None:
    rows = np.arange(58, dtype=np.float32).reshape(2, 29)
    for enabled in (False, True):
        location = tmp_path / str(enabled)
        writer = LedgerWriter(LedgerSettings(location=str(location), record_features=enabled))
        scores = np.array([0.1, 0.9])
        writer.append(Decision("r", "/api/v1/predict/batch", time.time(), "v1", 0.5, scores,
                               scores >= 0.5, rows[:, 28], features=rows))  # fmt: skip
        writer.close()
        features = table_dataset(open_files(str(location)), DECISIONS).to_table()["features"]
        expected = rows.tolist() if enabled else [None, None]
        assert features.to_pylist() == expected


def test_a_local_file_is_never_overwritten(tmp_path: Path) -> None:
    files = LocalFiles(LocalLocation(tmp_path))
    files.put_new("decisions/date=2026-01-01/a.parquet", b"first")
    with pytest.raises(LedgerFileExistsError):
        files.put_new("decisions/date=2026-01-01/a.parquet", b"second")
    assert (tmp_path / "decisions/date=2026-01-01/a.parquet").read_bytes() == b"first"
    assert sorted(p.name for p in (tmp_path / "decisions/date=2026-01-01").iterdir()) == [
        "a.parquet"
    ]  # no temporary file left behind


def test_an_s3_object_is_never_overwritten(s3_ledger: str) -> None:
    files = open_files(s3_ledger)
    assert isinstance(files, S3Files)
    files.put_new("decisions/date=2026-01-01/a.parquet", b"first")
    with pytest.raises(LedgerFileExistsError):
        files.put_new("decisions/date=2026-01-01/a.parquet", b"second")
    body = (
        boto3.client("s3")
        .get_object(Bucket=BUCKET, Key=files.location.key("decisions/date=2026-01-01/a.parquet"))[
            "Body"
        ]
        .read()
    )
    assert body == b"first"


def test_two_writers_at_once_never_collide(s3_ledger: str) -> None:
    settings = LedgerSettings(location=s3_ledger, max_records_per_file=10, flush_interval_s=0.05)
    writers = [LedgerWriter(settings, name="same-replica-name") for _ in range(2)]
    for index in range(120):
        for number, writer in enumerate(writers):
            writer.append(decision(f"w{number}-{index}"))
    stats = [writer.close() for writer in writers]
    assert [s.written for s in stats] == [120, 120]
    assert all(s.files_written >= 12 for s in stats)
    assert sorted(stored_ids(s3_ledger)) == sorted(
        f"w{number}-{index}" for number in range(2) for index in range(120)
    )


def test_a_file_is_written_once_enough_records_wait(s3_ledger: str) -> None:
    writer = LedgerWriter(LedgerSettings(location=s3_ledger, max_records_per_file=100, **IDLE))
    for index in range(250):
        writer.append(decision(f"r{index}"))
    # Two full files without any flush or close; the last 50 wait for the interval.
    assert wait_for(lambda: writer.stats().written == 200, timeout_s=30, every_s=0.05)
    assert writer.stats().waiting == 50
    assert writer.close().written == 250
    assert len(stored_ids(s3_ledger)) == 250


def test_close_writes_what_is_buffered(s3_ledger: str) -> None:
    writer = LedgerWriter(LedgerSettings(location=s3_ledger, **IDLE))
    for index in range(1_000):
        writer.append(decision(f"r{index}", rows=1 + index % 3))
    assert writer.stats().written == 0
    stats = writer.close()
    assert (stats.written, stats.dropped, stats.waiting) == (stats.appended, 0, 0)
    assert len(stored_ids(s3_ledger)) == stats.appended == sum(1 + i % 3 for i in range(1_000))
    writer.append(decision("after-close"))  # counted, never raised
    assert writer.stats().dropped == 1


def outage(moto: MotoProcess, writer: LedgerWriter, appended: list[str], count: int) -> None:
    """Stop the store, append `count` records while the writer fails to put them, start it."""
    failures = writer.stats().write_failures
    moto.stop()
    for index in range(count):
        request_id = f"outage-{len(appended)}"
        appended.append(request_id)
        writer.append(decision(request_id))
        if index % 50 == 0:
            writer.flush(timeout_s=0)  # a put attempt against the stopped store
    assert wait_for(lambda: writer.stats().write_failures > failures, timeout_s=60, every_s=0.05)
    moto.start()
    make_bucket()


def test_a_store_outage_loses_nothing_within_the_buffer_bound(
    s3_ledger: str, moto: MotoProcess
) -> None:
    drops: list[int] = []
    failures: list[int] = []
    settings = LedgerSettings(location=s3_ledger, max_records_per_file=40, buffer_records=500,
                              **IDLE)  # fmt: skip
    writer = LedgerWriter(settings, on_dropped=drops.append, on_write_failed=failures.append)
    before = [f"before-{i}" for i in range(120)]
    for request_id in before:
        writer.append(decision(request_id))
    assert writer.flush(timeout_s=30)
    assert sorted(stored_ids(s3_ledger)) == sorted(before)  # (the restarted store is empty)

    during: list[str] = []
    outage(moto, writer, during, 480)  # within the bound of 500
    assert writer.flush(timeout_s=60)
    stats = writer.close()
    assert sorted(stored_ids(s3_ledger)) == sorted(during)
    assert (stats.dropped, drops) == (0, [])
    assert stats.written == 600 and sum(failures) == stats.write_failures >= 1


def test_past_the_bound_the_oldest_records_are_dropped_and_counted(
    s3_ledger: str, moto: MotoProcess
) -> None:
    drops: list[int] = []
    settings = LedgerSettings(location=s3_ledger, max_records_per_file=40, buffer_records=500,
                              **IDLE)  # fmt: skip
    writer = LedgerWriter(settings, on_dropped=drops.append)
    appended: list[str] = []
    outage(moto, writer, appended, 1_300)
    stats = writer.close()
    stored = stored_ids(s3_ledger)
    assert len(stored) == len(set(stored))
    assert stats.dropped == sum(drops) == 1_300 - len(stored) > 0
    assert len(stored) <= 500
    # The oldest went: the newest records are there (whole files of 40 are dropped at a time,
    # and the file being put when the bound was passed is kept: at least 500 - 2 * 40).
    assert set(appended[-420:]) <= set(stored)


CHILD = textwrap.dedent(
    """
    import json, sys, time
    from ledger.schema import Decision
    from ledger.settings import LedgerSettings
    from ledger.writer import LedgerWriter

    writer = LedgerWriter(LedgerSettings(location=sys.argv[1], flush_interval_s=0.2,
                                         max_records_per_file=100))
    for burst in range(1_000_000):
        for index in range(37):
            number = burst * 37 + index
            writer.append(Decision(f"r{number:08d}", "/api/v1/predict", time.time(), "v1", 0.5,
                                   [0.1], [False], [1.0]))
        stats = writer.stats()
        print(json.dumps({"appended": stats.appended, "written": stats.written}), flush=True)
        sys.stdin.readline()  # the test decides when the next burst comes
    """
)


def test_a_killed_writer_loses_only_what_was_not_yet_written(
    s3_ledger: str, moto: MotoProcess
) -> None:
    import json

    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, s3_ledger],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=PROJECT_ROOT,
        env=os.environ.copy(),
    )  # fmt: skip
    assert child.stdin is not None and child.stdout is not None
    report = {"written": 0}
    for _ in range(200):
        report = json.loads(child.stdout.readline())
        if report["written"] >= 1_000 and report["appended"] >= 3_000:
            break
        time.sleep(0.005)  # pacing only: the writer puts files meanwhile
        child.stdin.write("\n")
        child.stdin.flush()
    child.send_signal(signal.SIGKILL)  # while it waits: it appended exactly report["appended"]
    child.wait(timeout=30)
    stored = sorted(stored_ids(s3_ledger))
    appended = [f"r{n:08d}" for n in range(report["appended"])]
    # Every record the writer had written is there, files are whole, nothing is doubled, and
    # what was lost is the newest records: those that waited for the next file at the kill.
    assert report["written"] <= len(stored) <= len(appended)
    assert stored == appended[: len(stored)]
    lost = len(appended) - len(stored)
    sys.stderr.write(f"kill: appended {len(appended)}, stored {len(stored)}, lost {lost}\n")


def test_what_serving_imports_brings_no_report_engine_and_no_ray() -> None:
    check = (
        "import sys, ledger.writer, ledger.schema, ledger.outcomes, ledger.settings\n"
        "heavy = {'duckdb', 'matplotlib', 'scipy', 'ray'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    run = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                         cwd=PROJECT_ROOT, timeout=60)  # fmt: skip
    assert run.returncode == 0, run.stderr
