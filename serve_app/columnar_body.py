"""A columnar batch body read straight into the model's float32 matrix.

pydantic makes a Python float of every value of a columnar body (29,000 of them for 1,000
transactions), and the matrix is then built from those objects: together the largest share of
the Ingress's CPU on that endpoint (docs/BENCHMARKS.md). simdjson parses the body in C++ and
hands each column over as one buffer of doubles, with no Python object per value.

A shortcut, never a second schema: it accepts only bodies that are plainly valid (an object of
exactly the feature columns, each a flat array of JSON numbers, all of one length within the
limit, every value within its field's bounds) and gives back the matrix the pydantic model gives
for them. For anything else it returns None, and the pydantic model (ColumnarBatchBody) decides
and words the error, as it does for every request that does not take the lean path.
"""

from dataclasses import dataclass

import numpy as np
import simdjson

from fraud_model.features import FEATURE_DTYPE, FEATURE_NAMES
from serve_app.schemas import feature_bounds

# What simdjson raises for a body it will not read as asked: malformed JSON or a number it does
# not take (ValueError), an integer beyond 64 bits (RuntimeError), a value of another type than
# asked for (TypeError), a missing column (KeyError).
_NOT_READ = (ValueError, RuntimeError, TypeError, KeyError)


@dataclass(frozen=True)
class ColumnarRows:
    """A columnar body already read: its transactions as the model's (n, 29) matrix."""

    matrix: np.ndarray

    def feature_matrix(self) -> np.ndarray:
        """As ColumnarBatchBody.feature_matrix: the transactions in the model's feature order."""
        return self.matrix


class ColumnarBodyReader:
    """Reads plainly valid columnar bodies of up to `max_transactions` transactions."""

    def __init__(self, max_transactions: int) -> None:
        self.max_transactions = max_transactions
        lows, highs = zip(*map(feature_bounds, FEATURE_NAMES), strict=True)
        self._lows = np.array(lows)[:, np.newaxis]
        self._highs = np.array(highs)[:, np.newaxis]

    def __call__(self, body: bytes) -> ColumnarRows | None:
        """The body's rows, or None where the pydantic model is to decide."""
        # One '[' per column and none elsewhere: simdjson would flatten a nested array into its
        # column. A body that does not open with '{' (leading whitespace, a byte-order mark that
        # simdjson skips and pydantic refuses) goes the pydantic way too.
        if not body.startswith(b"{") or not has_exactly(body, b"[", len(FEATURE_NAMES)):
            return None
        try:
            columns = read_columns(body)
        except _NOT_READ:
            return None
        lengths = {len(column) for column in columns}
        if len(lengths) != 1 or not 1 <= lengths.pop() <= self.max_transactions:
            return None
        stacked = np.stack(columns)
        if not ((stacked >= self._lows) & (stacked <= self._highs)).all():
            return None
        return ColumnarRows(np.ascontiguousarray(stacked.T, dtype=FEATURE_DTYPE))


def has_exactly(body: bytes, byte: bytes, count: int) -> bool:
    """Whether `byte` occurs exactly `count` times in `body`. bytes.count looks at every byte
    in turn; find() jumps to the next occurrence (memchr), and this stops after count + 1 of
    them: a twentieth of the time on a body of 1,000 transactions."""
    at = -1
    for _ in range(count):
        at = body.find(byte, at + 1)
        if at == -1:
            return False
    return body.find(byte, at + 1) == -1


def read_columns(body: bytes) -> list[np.ndarray]:
    """Each feature's values as float64, in the model's order; none unless the body is an
    object of exactly the feature columns, each an array. A new parser each time: a parser may
    not parse again while anything of its last document is still referenced, and a new one
    costs nothing measurable beside the parse."""
    document = simdjson.Parser().parse(body)
    # len() counts a repeated key again, where pydantic keeps the last one's values.
    if not isinstance(document, simdjson.Object) or len(document) != len(FEATURE_NAMES):
        return []
    columns = []
    for name in FEATURE_NAMES:
        column = document[name]
        if not isinstance(column, simdjson.Array):
            return []
        columns.append(np.frombuffer(column.as_buffer(of_type="d"), dtype=np.float64))
    return columns
