"""Bad requests over real HTTP: each gets the right 4xx and an error body naming the field or
the limit, never a 5xx, a hang or a score. Single and batch endpoints alike."""

import json

import httpx
import pytest

from serve_app.schemas import MAX_ABS_COMPONENT, MAX_AMOUNT
from tests.helpers import as_json, random_transactions

pytestmark = [pytest.mark.ray, pytest.mark.serve]

JSON = {"content-type": "application/json"}
VALID = as_json(random_transactions(1)[0])


def single(change: dict | None = None, drop: str | None = None) -> dict:
    body = VALID | (change or {})
    return {key: value for key, value in body.items() if key != drop}


def as_batch(transaction: dict) -> dict:
    """The same transaction as the 2nd of a 3-transaction batch."""
    return {"transactions": [VALID, transaction, VALID]}


# (case, transaction, status, error type, field named in loc, words in the message)
FIELD_CASES = [
    ("missing field", single(drop="V2"), 422, "missing", "V2", "required"),
    ("null", single({"V3": None}), 422, "float_type", "V3", "valid number"),
    ("numeric string", single({"Amount": "12.5"}), 422, "float_type", "Amount", "valid number"),
    ("boolean", single({"V1": True}), 422, "float_type", "V1", "valid number"),
    ("array", single({"V7": [1.0]}), 422, "float_type", "V7", "valid number"),
    ("object", single({"V8": {"x": 1}}), 422, "float_type", "V8", "valid number"),
    ("typo in a name", single({"v1": 0.1}), 422, "extra_forbidden", "v1", "not permitted"),
    ("lower-case amount", single({"amount": 5.0}), 422, "extra_forbidden", "amount", "not"),
    ("negative amount", single({"Amount": -0.01}), 422, "greater_than_equal", "Amount", "0"),
    ("huge amount", single({"Amount": MAX_AMOUNT * 2}), 422, "less_than_equal", "Amount", ""),
    ("huge component", single({"V5": MAX_ABS_COMPONENT + 1}), 422, "less_than_equal", "V5", ""),
]


@pytest.mark.parametrize(
    ("transaction", "status", "kind", "field", "words"),
    [case[1:] for case in FIELD_CASES],
    ids=[case[0] for case in FIELD_CASES],
)
@pytest.mark.parametrize("endpoint", ["single", "batch"])
def test_bad_fields_are_refused_naming_the_field(
    client: httpx.Client,
    endpoint: str,
    transaction: dict,
    status: int,
    kind: str,
    field: str,
    words: str,
) -> None:
    if endpoint == "single":
        response = client.post("/api/v1/predict", json=transaction)
        loc = ["body", field]
    else:
        response = client.post("/api/v1/predict/batch", json=as_batch(transaction))
        loc = ["body", "transactions", 1, field]
    assert response.status_code == status
    (error,) = response.json()["detail"]
    assert error["type"] == kind
    assert error["loc"] == loc
    assert words in error["msg"]
    assert "input" not in error  # transaction values are never echoed back


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("endpoint", ["single", "batch"])
def test_non_finite_numbers_are_refused(client: httpx.Client, endpoint: str, bad: str) -> None:
    marked = single({"V4": 123456.0})
    body = marked if endpoint == "single" else as_batch(marked)
    raw = json.dumps(body).replace("123456.0", bad)
    path = "/api/v1/predict" if endpoint == "single" else "/api/v1/predict/batch"
    response = client.post(path, content=raw, headers=JSON)
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"][-1] == "V4" and "finite" in error["msg"]


def too_deep(levels: int) -> str:
    return '{"V1": ' + "[" * levels + "]" * levels + "}"


# (case, path, raw body, headers, status, error type, words in the message)
BODY_CASES = [
    ("malformed JSON", "/api/v1/predict", '{"V1": 0.1,', JSON, 400, "json_invalid", "JSON"),
    ("empty body", "/api/v1/predict", "", JSON, 400, "bad_json", "empty"),
    ("JSON not an object", "/api/v1/predict", "[1, 2]", JSON, 422, "model_attributes_type", ""),
    ("deeply nested", "/api/v1/predict", too_deep(5_000), JSON, 400, "bad_json", "nested"),
    ("no content type", "/api/v1/predict", json.dumps(VALID), {}, 415, "unsupported_media_type",
     "application/json"),
    ("form content type", "/api/v1/predict", json.dumps(VALID),
     {"content-type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type",
     "x-www-form-urlencoded"),
    ("text content type", "/api/v1/predict/batch", json.dumps(as_batch(VALID)),
     {"content-type": "text/plain"}, 415, "unsupported_media_type", "text/plain"),
    ("single body over 16 KiB", "/api/v1/predict", json.dumps(single({"pad": "x" * 20_000})),
     JSON, 413, "too_large", "16384 bytes"),
    ("batch body over its limit", "/api/v1/predict/batch",
     json.dumps({"transactions": [VALID] * 1001, "pad": "x" * 2_100_000}), JSON, 413,
     "too_large", "2048000 bytes"),
    ("batch not a list", "/api/v1/predict/batch", json.dumps({"transactions": VALID}), JSON,
     422, "list_type", "valid list"),
    ("batch empty", "/api/v1/predict/batch", json.dumps({"transactions": []}), JSON, 422,
     "too_short", "at least 1 item"),
    ("batch over 1000", "/api/v1/predict/batch", json.dumps({"transactions": [VALID] * 1001}),
     JSON, 422, "too_long", "at most 1000 items"),
    ("batch with unknown key", "/api/v1/predict/batch",
     json.dumps({"transactions": [VALID], "explain": True}), JSON, 422, "extra_forbidden",
     "not permitted"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "raw", "headers", "status", "kind", "words"),
    [case[1:] for case in BODY_CASES],
    ids=[case[0] for case in BODY_CASES],
)
def test_bad_bodies_get_the_right_4xx(
    client: httpx.Client, path: str, raw: str, headers: dict, status: int, kind: str, words: str
) -> None:
    response = client.post(path, content=raw.encode(), headers=headers)
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert detail and all(set(error) == {"type", "loc", "msg"} for error in detail)
    assert detail[0]["type"] == kind
    assert words in detail[0]["msg"]


def test_unknown_routes_and_methods_use_the_same_error_shape(client: httpx.Client) -> None:
    missing = client.get("/api/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["detail"][0]["type"] == "not_found"
    wrong_method = client.get("/api/v1/predict")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["detail"][0]["type"] == "method_not_allowed"


def test_error_responses_are_documented_in_the_openapi_spec(client: httpx.Client) -> None:
    spec = client.get("/api/v1/openapi.json").json()
    error_body = {"$ref": "#/components/schemas/ErrorBody"}
    documented = {
        ("post", "/api/v1/predict"): {"400", "401", "413", "415", "422", "500", "503", "504"},
        ("post", "/api/v1/predict/batch"): {"400", "401", "413", "415", "422", "500", "503", "504"},
        ("get", "/api/v1/model"): {"401", "500", "503", "504"},
    }
    for (method, path), statuses in documented.items():
        responses = spec["paths"][path][method]["responses"]
        assert statuses <= set(responses), (path, sorted(responses))
        for status in statuses:
            assert responses[status]["content"]["application/json"]["schema"] == error_body
            assert responses[status]["description"]
