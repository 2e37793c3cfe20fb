"""The columnar body's fast reader (serve_app.columnar_body) against the pydantic model it
stands in for: every body it reads, the model reads to the same matrix; every body the model
refuses, it leaves to the model; and it reads the bodies clients send."""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from fraud_model.features import FEATURE_DTYPE, FEATURE_NAMES
from serve_app.columnar_body import ColumnarBodyReader, has_exactly
from serve_app.schemas import (
    MAX_ABS_COMPONENT,
    MAX_AMOUNT,
    ColumnarBatchBody,
    columnar_request_model,
)
from tests.helpers import random_transactions

MOST = 20
MODEL = columnar_request_model(MOST)
READ = ColumnarBodyReader(MOST)


def model_matrix(body: bytes) -> np.ndarray | None:
    """The matrix the pydantic model reads from `body`; None when it refuses it."""
    try:
        parsed: ColumnarBatchBody = MODEL.model_validate_json(body)
    except ValidationError:
        return None
    return parsed.feature_matrix()


def columns_json(rows: np.ndarray) -> bytes:
    return json.dumps({name: rows[:, i].tolist() for i, name in enumerate(FEATURE_NAMES)}).encode()


def test_a_body_as_clients_send_it_is_read_to_the_model_s_matrix() -> None:
    body = columns_json(random_transactions(MOST, seed=31).astype(np.float64))
    rows = READ(body)
    assert rows is not None
    expected = model_matrix(body)
    assert expected is not None
    assert rows.feature_matrix().dtype == FEATURE_DTYPE
    assert rows.feature_matrix().flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(rows.feature_matrix(), expected)


def test_the_bounds_are_the_model_s_own_inclusive_ones() -> None:
    rows = random_transactions(4, seed=32).astype(np.float64)
    rows[0, :28], rows[1, :28] = MAX_ABS_COMPONENT, -MAX_ABS_COMPONENT
    rows[0, 28], rows[1, 28] = MAX_AMOUNT, 0.0
    body = columns_json(rows)
    read = READ(body)
    assert read is not None
    np.testing.assert_array_equal(read.feature_matrix(), model_matrix(body))


VALID = columns_json(random_transactions(2, seed=33).astype(np.float64)).decode()


def with_column(name: str, values: str) -> bytes:
    """VALID with one column's JSON text replaced."""
    document = json.loads(VALID)
    text = json.dumps(document).replace(json.dumps(document[name]), values, 1)
    return text.encode()


# One column's JSON text, each a way the model refuses it.
BAD_COLUMNS = {
    "a boolean": ("V3", "[0.5, true]"),
    "null": ("V3", "[0.5, null]"),
    "a numeric string": ("V3", '[0.5, "1.5"]'),
    "a nested array": ("V3", "[0.5, [0.25]]"),
    "nested arrays of one": ("V3", "[[0.5], [0.25]]"),
    "beyond a double": ("V3", "[0.5, 1e400]"),
    "above the bound": ("V3", "[0.5, 1000.0001]"),
    "a negative amount": ("Amount", "[0.5, -0.01]"),
    "a 65-bit integer": ("V3", "[0.5, 18446744073709551616]"),
    "a short column": ("V3", "[0.5]"),
    "a number for a column": ("V3", "0.5"),
    "an object for a column": ("V3", "{}"),
}


@pytest.mark.parametrize(
    "body",
    [
        *(pytest.param(with_column(*change), id=name) for name, change in BAD_COLUMNS.items()),
        pytest.param(
            json.dumps({name: [] for name in FEATURE_NAMES}).encode(), id="no transactions"
        ),
        pytest.param(
            json.dumps({name: [0.5] * (MOST + 1) for name in FEATURE_NAMES}).encode(),
            id="over the limit",
        ),
        pytest.param(VALID.replace('"V5"', '"v5"', 1).encode(), id="a misspelt column"),
        pytest.param(VALID.replace("{", '{"V0": [1, 2], ', 1).encode(), id="an extra column"),
        pytest.param(VALID.replace("{", '{"V0": 1.5, ', 1).encode(), id="an extra number"),
        pytest.param(
            VALID.replace("}", ', "V1": 0.5}', 1).encode(), id="a column repeated as a number"
        ),
        pytest.param(
            json.dumps({k: v for k, v in json.loads(VALID).items() if k != "V9"}).encode(),
            id="a missing column",
        ),
        pytest.param(("[" + VALID + "]").encode(), id="an array of it"),
        pytest.param((VALID + "x").encode(), id="trailing text"),
        pytest.param(VALID.replace("]", ", NaN]", 1).encode(), id="NaN"),
        pytest.param(VALID.replace("]", ", 01]", 1).encode(), id="a leading zero"),
    ],
)
def test_a_body_the_model_refuses_is_left_to_the_model(body: bytes) -> None:
    assert model_matrix(body) is None
    assert READ(body) is None


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(("\ufeff" + VALID).encode(), id="a byte-order mark"),
        pytest.param((" \n" + VALID).encode(), id="leading whitespace"),
        pytest.param(VALID.replace("{", '{"V1": [0.5, 0.5], ', 1).encode(), id="a repeated column"),
    ],
)
def test_a_body_it_does_not_read_as_the_model_would_is_left_to_the_model(body: bytes) -> None:
    """simdjson skips a byte-order mark that pydantic refuses, and keeps the first of a
    repeated key where pydantic keeps the last."""
    assert READ(body) is None


# Values near the edges of what the model takes, written as clients may write JSON numbers.
_BOUND = st.sampled_from([MAX_ABS_COMPONENT, -MAX_ABS_COMPONENT, MAX_AMOUNT, 0.0, -0.0, 1e-320])
_NUMBER = st.one_of(
    st.floats(-1.5 * MAX_AMOUNT, 1.5 * MAX_AMOUNT, allow_nan=False),
    st.integers(-(2**70), 2**70),
    _BOUND,
    st.floats(-2, 2).map(lambda x: x * MAX_ABS_COMPONENT),
)
_VALUE_TEXT = st.one_of(
    _NUMBER.map(json.dumps),
    _NUMBER.map(lambda x: format(x, ".17e") if isinstance(x, float) else str(x)),
    st.sampled_from(["true", "null", '"1"', "[1]", "1E2", "-0", "2e-400", "1e309"]),
)


@st.composite
def columnar_bodies(draw: st.DrawFn) -> bytes:
    """JSON text of a columnar body, mostly valid, with odd numbers and shapes mixed in."""
    n = draw(st.integers(0, MOST + 1))
    names = list(FEATURE_NAMES)
    if draw(st.booleans()):
        names = draw(st.permutations(names))
    if draw(st.integers(0, 9)) == 0:
        names = [*names, draw(st.sampled_from([*FEATURE_NAMES, "V0", "amount"]))]
    if draw(st.integers(0, 9)) == 0:
        names.remove(draw(st.sampled_from(FEATURE_NAMES)))
    fields = []
    for name in names:
        length = n if draw(st.integers(0, 19)) else draw(st.integers(0, MOST + 1))
        values = draw(st.lists(_VALUE_TEXT, min_size=length, max_size=length))
        fields.append(f'"{name}":[{",".join(values)}]')
    return ("{" + ",".join(fields) + "}").encode()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(columnar_bodies())
def test_whatever_it_reads_the_model_reads_to_the_same_matrix(body: bytes) -> None:
    read, expected = READ(body), model_matrix(body)
    if read is not None:
        assert expected is not None
        np.testing.assert_array_equal(read.feature_matrix(), expected)


@settings(max_examples=30, deadline=None)
@given(
    st.integers(1, MOST).flatmap(
        lambda n: st.lists(
            st.lists(
                st.floats(-MAX_ABS_COMPONENT, MAX_ABS_COMPONENT) | st.integers(-1000, 1000),
                min_size=n,
                max_size=n,
            ),
            min_size=len(FEATURE_NAMES),
            max_size=len(FEATURE_NAMES),
        )
    )
)
def test_every_valid_body_is_read_without_the_model(columns: list[list[float]]) -> None:
    columns[-1] = [abs(value) for value in columns[-1]]  # Amount
    body = json.dumps(dict(zip(FEATURE_NAMES, columns, strict=True))).encode()
    expected = model_matrix(body)
    assert expected is not None
    read = READ(body)
    assert read is not None
    np.testing.assert_array_equal(read.feature_matrix(), expected)


@given(st.binary(max_size=64), st.integers(min_value=0, max_value=8))
def test_has_exactly_counts_as_bytes_count_does(body: bytes, count: int) -> None:
    body = body.replace(b"\x00", b"[")  # some of them the byte counted
    assert has_exactly(body, b"[", count) == (body.count(b"[") == count)
