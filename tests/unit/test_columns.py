"""The columnar batch endpoint: the same answers and rules as the batch of objects, as columns."""

from pathlib import Path

import pytest

from fraud_model.features import FEATURE_NAMES
from serve_app.config import AppArgs
from tests.helpers import as_json, assert_same_answers, random_transactions
from tests.unit.api_client import client


def as_columns(rows: list[dict[str, float]]) -> dict[str, list[float]]:
    return {name: [row[name] for row in rows] for name in FEATURE_NAMES}


def test_columns_get_the_batch_endpoint_s_answers_as_columns(artifact_dir: Path) -> None:
    rows = [as_json(row) for row in random_transactions(50, seed=21)]
    api = client(artifact_dir)
    expected = api.post("/api/v1/predict/batch", json={"transactions": rows}).json()
    answer = api.post("/api/v1/predict/columns", json=as_columns(rows))
    assert answer.status_code == 200
    columns, predictions = answer.json(), expected["predictions"]
    assert_same_answers(columns, predictions)
    assert columns["threshold"] == predictions[0]["threshold"]


@pytest.mark.parametrize(
    ("change", "loc", "kind"),
    [
        ({"V3": [0.5, 1e9]}, ["body", "V3", 1], "less_than_equal"),
        ({"V7": [0.5, "1.0"]}, ["body", "V7", 1], "float_type"),
        ({"Amount": [0.5, -1.0]}, ["body", "Amount", 1], "greater_than_equal"),
        ({"V1": []}, ["body", "V1"], "too_short"),
        ({"V28": None}, ["body", "V28"], "list_type"),
        ({"v1": [0.5, 0.5]}, ["body", "v1"], "extra_forbidden"),
    ],
)
def test_a_bad_value_is_refused_naming_its_column_and_position(
    artifact_dir: Path, change: dict, loc: list, kind: str
) -> None:
    body = as_columns([as_json(row) for row in random_transactions(2, seed=22)]) | change
    answer = client(artifact_dir).post("/api/v1/predict/columns", json=body)
    assert answer.status_code == 422
    assert {"type": kind, "loc": loc} in [
        {"type": item["type"], "loc": item["loc"]} for item in answer.json()["detail"]
    ]


def test_columns_of_different_lengths_are_refused_naming_the_column(artifact_dir: Path) -> None:
    body = as_columns([as_json(row) for row in random_transactions(3, seed=23)])
    body["V12"] = body["V12"][:2]
    answer = client(artifact_dir).post("/api/v1/predict/columns", json=body)
    assert answer.status_code == 422
    (item,) = answer.json()["detail"]
    assert "column V12 has 2 values where V1 has 3" in item["msg"]


def test_the_transaction_limit_holds_for_columns(artifact_dir: Path) -> None:
    rows = [as_json(row) for row in random_transactions(4, seed=24)]
    api = client(artifact_dir, AppArgs(allow_anonymous=True, max_transactions_per_request=3))
    answer = api.post("/api/v1/predict/columns", json=as_columns(rows))
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert detail[0]["type"] == "too_long" and detail[0]["loc"] == ["body", "V1"]
    assert {item["type"] for item in detail} == {"too_long", "too_many_errors"}  # 29 columns
    assert api.post("/api/v1/predict/columns", json=as_columns(rows[:3])).status_code == 200
