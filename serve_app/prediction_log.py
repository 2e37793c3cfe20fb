"""The prediction log: every decision as one JSON line, written in one call per event-loop turn.

Fraud teams join these lines with chargebacks weeks later, so every answer gets one. Each line is
serialised by pydantic-core when the answer is sent; the lines of one event-loop turn (under
load: every request a coalesced model call answered) go to the `fraud.predictions` logger as one
record. The Ingress writes that logger to a file of its own beside Serve's replica logs
(`prediction_log_file`); any other handler (a test's, a shipper's) gets the same lines.
"""

import asyncio
import logging
import logging.handlers
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic_core import to_json

LOGGER_NAME = "fraud.predictions"


class PredictionLog:
    """Buffers JSON lines and hands them to the `fraud.predictions` logger once per turn of the
    running event loop (at once when no loop runs)."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._logger = logger if logger is not None else logging.getLogger(LOGGER_NAME)
        self._lines: list[bytes] = []

    def write(self, record: dict[str, Any]) -> None:
        time = datetime.now(UTC).isoformat(timespec="milliseconds")
        self._lines.append(to_json({"time": time, **record}))
        if len(self._lines) > 1:
            return  # a flush is already scheduled for this turn
        try:
            asyncio.get_running_loop().call_soon(self.flush)
        except RuntimeError:
            self.flush()

    def flush(self) -> None:
        if not self._lines:
            return
        text = b"\n".join(self._lines).decode()
        self._lines = []
        self._logger.info(text)


def prediction_log_file(path: Path, max_bytes: int, backups: int) -> logging.Handler:
    """A rotating file of JSON lines, nothing added to them, for the `fraud.predictions`
    logger."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
    )
    handler.setFormatter(logging.Formatter("%(message)s"))
    return handler


def write_predictions_to(handler: logging.Handler) -> None:
    """Send the prediction log to `handler` only: not also through the replica's own log
    (Ray's filters and formatter per record are what made each line expensive)."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for old in list(logger.handlers):
        logger.removeHandler(old)
        old.close()
    logger.addHandler(handler)
