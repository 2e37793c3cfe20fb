"""What the decision ledger costs the request path, and its writer in the background.

    uv run python -m benchmarks.ledger_append [--records 200000]

1. `append`: a single transaction's Decision built and appended, and a batch of 1,000 as one
   Decision, timed in this thread while the writer's thread writes files (to a local directory)
   as it would under load. Per record, best of 5 rounds.
2. The background work per record: building the Parquet file and writing it.
3. Memory: bytes per record waiting in the buffer (Python objects) and in a packed file.
"""

import argparse
import functools
import gc
import sys
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path

import numpy as np

from ledger.schema import Decision
from ledger.settings import LedgerSettings
from ledger.writer import LedgerWriter

ROUNDS = 5
# Request ids as Serve makes them (random UUIDs): they are most of a file's bytes.


@functools.cache
def request_ids() -> list[str]:
    rng = np.random.default_rng(1)
    return [str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(100_000)]


def single(index: int, now: float) -> Decision:
    return Decision(
        request_id=request_ids()[index % 100_000],
        route="/api/v1/predict",
        received_at=now,
        model_version="20261126T000153Z-d7180439",
        threshold=0.26135686136869507,
        scores=[0.0123],
        decisions=[False],
        amounts=[42.5],
        key_id="checkout-eu-1",
        latency_ms=4.95,
    )


def batch(index: int, now: float, scores: np.ndarray) -> Decision:
    return Decision(
        request_id=f"settlement-{index:08d}",
        route="/api/v1/predict/batch",
        received_at=now,
        model_version="20261126T000153Z-d7180439",
        threshold=0.26135686136869507,
        scores=scores,
        decisions=scores >= 0.26135686136869507,
        amounts=scores * 100,
        key_id="settlement",
        latency_ms=9.1,
    )


def time_appends(records: int, make: str) -> float:
    """Seconds per record appended, best of ROUNDS, while the writer writes in the background:
    `single` builds each Decision and appends it; `prebuilt` only appends; `batch` appends
    Decisions of 1,000 transactions."""
    per_record = []
    scores = np.random.default_rng(0).random(1_000)
    with tempfile.TemporaryDirectory() as directory:
        writer = LedgerWriter(LedgerSettings(location=directory, buffer_records=10 * records))
        for _ in range(ROUNDS):
            now = time.time()
            if make == "batch":
                started = time.perf_counter()
                for index in range(records // 1_000):
                    writer.append(batch(index, now, scores))
                count = records // 1_000 * 1_000
            elif make == "prebuilt":
                built = [single(index, now) for index in range(records)]
                started = time.perf_counter()
                for decision in built:
                    writer.append(decision)
                count = records
            else:
                started = time.perf_counter()
                for index in range(records):
                    writer.append(single(index, now))
                count = records
            per_record.append((time.perf_counter() - started) / count)
            writer.flush()
        writer.close()
    return min(per_record)


def background_cost(records: int) -> tuple[float, int]:
    """Seconds per record to build and write files, and the files' bytes per record."""
    now = time.time()
    with tempfile.TemporaryDirectory() as directory:
        settings = LedgerSettings(
            location=directory,
            flush_interval_s=3600.0,
            max_records_per_file=records,
            buffer_records=2 * records,
        )
        writer = LedgerWriter(settings)
        for index in range(records):
            writer.append(single(index, now))
        started = time.perf_counter()
        writer.flush()
        elapsed = time.perf_counter() - started
        writer.close()
        size = sum(path.stat().st_size for path in Path(directory).rglob("*.parquet"))
    return elapsed / records, size // records


def buffered_bytes(records: int) -> float:
    now = time.time()
    gc.collect()
    tracemalloc.start()
    held = [single(index, now) for index in range(records)]
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del held
    return current / records


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    args = parser.parse_args()
    one = time_appends(args.records, "single")
    only = time_appends(args.records, "prebuilt")
    many = time_appends(args.records, "batch")
    background, file_bytes = background_cost(args.records)
    memory = buffered_bytes(args.records)
    sys.stdout.write(
        f"append, single transactions: {one * 1e6:.2f} us per record (Decision built + append), "
        f"{only * 1e6:.2f} us (append alone)\n"
        f"append, batches of 1,000:   {many * 1e6:.3f} us per record\n"
        f"background, build + write:   {background * 1e6:.2f} us per record "
        f"({args.records:,} records in one file)\n"
        f"memory: {memory:.0f} bytes per buffered single-transaction record, "
        f"{file_bytes} bytes per record in a written file\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
