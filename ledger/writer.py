"""The ledger writer: records appended on the request path, written as files in the background.

`append(record)` only puts the record in a bounded in-memory buffer (a lock, a deque append and
two additions): it never blocks on the store and never raises. A background thread turns what
waits into Parquet files (one per table and day) every `flush_interval_s`, or as soon as
`max_records_per_file` records wait, and puts each file once under a name no other writer uses
(`<name>-<random id>-<sequence>.parquet`). A file the store refused stays in memory, as its
compressed bytes, and is put again under the same name at the next flush (if the earlier put did
land after all, the store says the name exists: then it is done).

Bounded loss: records not yet in the store (buffered, or in files not yet written) are at most
`buffer_records`. Past that, the oldest are dropped, whole files first (the one being put is kept
until its put ends), counted in `stats().dropped` and reported to `on_dropped` from the
background thread. A process killed abruptly loses what was not yet written: at most the last
flush interval's records, and during a store outage what the buffer held. `close()` writes what
is buffered, within `close_timeout_s`.
"""

import io
import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ledger.files import (
    LedgerFileExistsError,
    LedgerFiles,
    open_files,
    partition_key,
)
from ledger.schema import (
    DECISIONS,
    REFUSALS,
    SCHEMA_VERSION,
    Decision,
    Record,
    Refusal,
    day_of,
    decisions_table,
    refusals_table,
)
from ledger.settings import LedgerSettings

logger = logging.getLogger(__name__)
ERROR_LOG_EVERY_S = 60.0  # a store that is down fails every flush: say so once in a while


@dataclass(frozen=True)
class LedgerStats:
    """Counts since the writer started, in records (transactions; a refusal is one)."""

    appended: int
    written: int
    dropped: int
    waiting: int  # buffered or in files not yet written
    files_written: int
    write_failures: int
    last_error: str | None


@dataclass
class _File:
    key: str
    data: bytes
    records: int
    tried: bool = False  # put once already: "the name exists" then means our own put landed


class LedgerWriter:
    """Buffers ledger records and writes them in the background (see the module docstring).

    `name` goes into every file name (say, the replica's id); a random id is added, so that
    writers never collide. `on_dropped(n)` and `on_write_failed(n)` are called from the
    background thread with the records dropped and the puts that failed since their last call
    (metric counters' `inc`); `files` replaces the store that `settings.location` names.
    """

    def __init__(
        self,
        settings: LedgerSettings | None = None,
        *,
        name: str | None = None,
        on_dropped: Callable[[int], None] | None = None,
        on_write_failed: Callable[[int], None] | None = None,
        files: LedgerFiles | None = None,
    ) -> None:
        self.settings = settings if settings is not None else LedgerSettings()
        self._files = files if files is not None else open_files(
            self.settings.location,
            timeout_s=self.settings.put_timeout_s,
            attempts=self.settings.put_attempts,
        )  # fmt: skip
        base = name if name is not None else f"{socket.gethostname()}-{os.getpid()}"
        self.writer_id = f"{_plain(base)}-{uuid.uuid4().hex[:16]}"
        self._hooks = ((on_dropped, "_dropped"), (on_write_failed, "_failures"))
        self._reported = {"_dropped": 0, "_failures": 0}
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._buffer: deque[Record] = deque()
        self._buffered = 0  # records in _buffer
        self._unwritten: deque[_File] = deque()  # oldest first; [0] may be in flight
        self._unwritten_records = 0
        self._in_flight: _File | None = None
        self._appended = self._written = self._dropped = 0
        self._files_written = self._failures = 0
        self._last_error: str | None = None
        self._error_logged_at = -ERROR_LOG_EVERY_S
        self._sequence = 0
        self._flush_now = False
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
        self._thread.start()

    # The request path.

    def append(self, record: Record) -> None:
        """Keep `record` for the next file. Never blocks on the store, never raises."""
        try:
            count = record.records
            with self._lock:
                self._appended += count
                if self._closing:
                    self._dropped += count
                    return
                self._buffer.append(record)
                self._buffered += count
                if self._buffered + self._unwritten_records > self.settings.buffer_records:
                    self._drop_oldest()
                if self._buffered >= self.settings.max_records_per_file:
                    self._wake.notify()
        except Exception:  # a malformed record must not fail the answer
            logger.exception("A ledger record could not be buffered")

    # Control.

    def flush(self, timeout_s: float | None = None) -> bool:
        """Write what was appended so far, now; True if all of it is written (or dropped)
        within `timeout_s`."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._lock:
            target = self._appended
            self._flush_now = True
            self._wake.notify()
            while self._written + self._dropped < target:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._wake.wait(remaining)
        return True

    def close(self) -> LedgerStats:
        """Write what is buffered (within `close_timeout_s`) and stop. What could not be
        written is counted as dropped. Appends after this are counted as dropped."""
        with self._lock:
            self._closing = True
            self._wake.notify()
        self._thread.join(self.settings.close_timeout_s)
        with self._lock:
            if self._thread.is_alive() or self._buffered or self._unwritten_records:
                lost = self._buffered + self._unwritten_records
                self._buffer.clear()
                self._unwritten.clear()
                self._buffered = self._unwritten_records = 0
                self._dropped += lost
                logger.error("The ledger writer stopped with %d records not written", lost)
        self._report()
        return self.stats()

    def stats(self) -> LedgerStats:
        with self._lock:
            return LedgerStats(
                appended=self._appended,
                written=self._written,
                dropped=self._dropped,
                waiting=self._buffered + self._unwritten_records,
                files_written=self._files_written,
                write_failures=self._failures,
                last_error=self._last_error,
            )

    # Under the lock.

    def _drop_oldest(self) -> None:
        limit = self.settings.buffer_records
        files = self._unwritten
        while self._buffered + self._unwritten_records > limit:
            # Oldest first: files not being put, then the buffer's oldest records.
            victim = next((f for f in files if f is not self._in_flight), None)
            if victim is not None:
                files.remove(victim)
                self._unwritten_records -= victim.records
                self._dropped += victim.records
            elif self._buffer:
                record = self._buffer.popleft()
                self._buffered -= record.records
                self._dropped += record.records
            else:
                break  # only the file in flight is left: its put decides

    # The background thread.

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._closing and not self._flush_now:
                    woken = self._wake.wait_for(
                        lambda: (
                            self._closing
                            or self._flush_now
                            or self._buffered >= self.settings.max_records_per_file
                        ),
                        self.settings.flush_interval_s,
                    )
                else:
                    woken = True
                # Woken by a full file's worth of records: only full files now, the rest waits
                # for the interval (fewer, larger files).
                full_only = woken and not (self._closing or self._flush_now)
                closing, self._flush_now = self._closing, False
            if closing:
                self._drain()
                return
            self._flush_once(full_only)
            with self._lock:
                self._wake.notify_all()  # flush() waiters

    def _flush_once(self, full_only: bool = False) -> bool:
        """Pack what is buffered (`full_only`: only whole files' worth) and put the files, in
        order, up to the first failure; True if nothing is left unwritten."""
        try:
            self._pack(full_only)
            done = self._put_all()
        except Exception:  # the thread must outlive any bug: the records stay in memory
            logger.exception("The ledger writer's flush failed")
            done = False
        self._report()
        return done

    def _drain(self) -> None:
        """At close: flush until everything is written or close_timeout_s is nearly spent."""
        deadline = time.monotonic() + self.settings.close_timeout_s * 0.9
        while not self._flush_once() and time.monotonic() < deadline:
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        with self._lock:
            self._wake.notify_all()

    def _take(self) -> list[Record]:
        """Up to max_records_per_file records from the buffer's front (whole records)."""
        with self._lock:
            if self._buffered <= self.settings.max_records_per_file:
                taken, self._buffer = list(self._buffer), deque()
                self._buffered = 0
                return taken
            taken, count = [], 0
            while self._buffer and count < self.settings.max_records_per_file:
                record = self._buffer.popleft()
                taken.append(record)
                count += record.records
            self._buffered -= count
            return taken

    def _pack(self, full_only: bool = False) -> None:
        """Turn what is buffered into files (one per table and day, at most
        max_records_per_file records each), queued to be put."""
        while True:
            with self._lock:
                if full_only and self._buffered < self.settings.max_records_per_file:
                    return
            taken = self._take()
            if not taken:
                return
            built = self._build(taken)
            with self._lock:
                for file in built:
                    self._unwritten.append(file)
                    self._unwritten_records += file.records
                if self._buffered + self._unwritten_records > self.settings.buffer_records:
                    self._drop_oldest()

    def _build(self, records: Sequence[Record]) -> list[_File]:
        groups: dict[tuple[str, date], list[Any]] = {}
        received = [record.received_at for record in records]
        first, last = day_of(min(received)), day_of(max(received))
        if first == last and all(isinstance(record, Decision) for record in records):
            # The usual flush, grouped without a date per record: decisions only, of one day.
            groups[(DECISIONS, first)] = list(records)
        else:
            for record in records:
                table = DECISIONS if isinstance(record, Decision) else REFUSALS
                groups.setdefault((table, day_of(record.received_at)), []).append(record)
        built = []
        for (table, day), members in sorted(groups.items()):
            if table == DECISIONS:
                arrow = decisions_table(members, self.settings.record_features)
            else:
                arrow = refusals_table([m for m in members if isinstance(m, Refusal)])
            self._sequence += 1
            name = f"{self.writer_id}-{self._sequence:010d}.parquet"
            built.append(_File(partition_key(table, day, name), _parquet(arrow), arrow.num_rows))
        return built

    def _put_all(self) -> bool:
        while True:
            with self._lock:
                if not self._unwritten:
                    return True
                file = self._in_flight = self._unwritten[0]
            ok = self._put(file)
            with self._lock:
                self._in_flight = None
                if not ok:
                    if self._buffered + self._unwritten_records > self.settings.buffer_records:
                        self._drop_oldest()
                    return False
                if self._unwritten and self._unwritten[0] is file:
                    self._unwritten.popleft()
                    self._unwritten_records -= file.records
                else:  # close() gave it up as lost while it was being put; it landed after all
                    self._dropped -= file.records
                self._written += file.records
                self._files_written += 1

    def _put(self, file: _File) -> bool:
        try:
            self._files.put_new(file.key, file.data)
        except LedgerFileExistsError:
            if not file.tried:  # another writer's file under our random name: never expected
                logger.error("Ledger file %s exists already; kept in memory", file.key)
                self._failed(f"{file.key} exists")
                return False
        except Exception as error:  # the store is down, access denied, ...
            file.tried = True
            self._failed(str(error))
            return False
        return True

    def _failed(self, reason: str) -> None:
        with self._lock:
            self._failures += 1
            self._last_error = reason
        now = time.monotonic()
        if now - self._error_logged_at >= ERROR_LOG_EVERY_S:
            self._error_logged_at = now
            logger.warning("The decision ledger cannot be written (records kept): %s", reason)

    def _report(self) -> None:
        """Hand the hooks what they have not been told yet (outside the lock)."""
        news = []
        with self._lock:
            for hook, name in self._hooks:
                total: int = getattr(self, name)
                news.append((hook, total - self._reported[name]))
                self._reported[name] = total
        for hook, new in news:
            if hook is not None and new > 0:
                try:
                    hook(new)
                except Exception:
                    logger.exception("A ledger metric hook failed")


def _parquet(table: pa.Table) -> bytes:
    # The schema version in the file's own metadata too, for readers that look before they scan.
    table = table.replace_schema_metadata({"fraud_ledger.schema_version": str(SCHEMA_VERSION)})
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def _plain(name: str) -> str:
    """`name` as a file-name part: letters, digits and '-' only (no '=' or '/')."""
    cleaned = "".join(c if c.isalnum() or c == "-" else "-" for c in name).strip("-")
    return cleaned[:64] or "writer"
