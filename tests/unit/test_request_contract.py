"""One request contract for every HTTP path, tried from outside as a client sees it: access is
closed by default whatever the route prefix, deciding headers are read one way only, request ids
are bounded, and the lean path and FastAPI's routes answer alike."""

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serve_app.api import create_api
from serve_app.config import AppArgs
from serve_app.settings import ServiceSettings
from tests.helpers import endpoint_calls
from tests.unit.api_client import TRANSACTION, InProcessModel

SCORING, OPERATOR = "s" * 40, "o" * 40
KEYS = {"api_keys": [SCORING], "operator_keys": [OPERATOR]}
BATCH = {"transactions": [TRANSACTION, TRANSACTION | {"V14": -9.0}]}
COLUMNS = {name: [value, value] for name, value in TRANSACTION.items()}
PREFIXES = ["", "/fraud", "/teams/risk"]


def keyed_client(artifact: Path, prefix: str = "", **args: object) -> TestClient:
    """The API with keys, mounted under `prefix` as Serve mounts it for a route_prefix: the path
    keeps the prefix, which is passed as the ASGI root_path. Its ledger in the artifact's
    directory, empty."""
    ledger = {"location": str(artifact.parent / "ledger")}
    api = create_api(
        InProcessModel(artifact), ServiceSettings(**KEYS), AppArgs(**{"ledger": ledger, **args})
    )
    return TestClient(api, root_path=prefix)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize("prefix", PREFIXES)
def test_under_any_route_prefix_every_endpoint_needs_its_key(
    artifact_dir: Path, prefix: str
) -> None:
    api = keyed_client(artifact_dir, prefix)
    for method, path, body, role, answer in endpoint_calls(TRANSACTION):
        url = prefix + path
        anonymous, scoring, operator = (
            api.request(method, url, json=body, headers=headers).status_code
            for headers in ({}, bearer(SCORING), bearer(OPERATOR))
        )
        assert operator == answer, (url, operator)
        if role == 0:
            assert anonymous == 200 and scoring == 200, url
        else:
            assert anonymous == 401, (url, anonymous)
            assert scoring == (403 if role == 2 else operator), (url, scoring)


@pytest.mark.parametrize("prefix", PREFIXES)
def test_a_route_the_api_does_not_have_needs_a_key_too(artifact_dir: Path, prefix: str) -> None:
    api = keyed_client(artifact_dir, prefix)
    for method, path in [("GET", "/api/v1/nothing-here"), ("POST", "/api/v1/model")]:
        assert api.request(method, prefix + path).status_code == 401, path
        known = api.request(method, prefix + path, headers=bearer(SCORING))
        assert known.status_code in (404, 405), path


@pytest.mark.parametrize("header", ["Content-Type", "Authorization", "X-API-Key", "X-Request-ID"])
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/predict", TRANSACTION),  # the lean path's
        ("POST", "/api/v1/predict?explain=false", TRANSACTION),  # FastAPI's route
        ("POST", "/api/v1/predict/columns", COLUMNS),
        ("GET", "/api/v1/model", None),
        ("GET", "/api/v1/utils/health-check/", None),
    ],
)
def test_a_deciding_header_sent_twice_is_refused_naming_it(
    artifact_dir: Path, header: str, method: str, path: str, body: object
) -> None:
    """Two Content-Types (or keys, or request ids) would be read as the first by one reader and
    as the last by another: neither is chosen."""
    api = keyed_client(artifact_dir)
    values = {
        "Content-Type": ["text/plain", "application/json"],
        "Authorization": [f"Bearer {SCORING}", f"Bearer {OPERATOR}"],
        "X-API-Key": [SCORING, OPERATOR],
        "X-Request-ID": ["first", "second"],
    }[header]
    headers = [("Content-Type", "application/json"), ("Authorization", f"Bearer {OPERATOR}")]
    headers = [(name, value) for name, value in headers if name != header]
    headers += [(header, value) for value in values]
    content = json.dumps(body).encode() if body is not None else b""
    response = api.request(method, path, content=content, headers=headers)
    assert response.status_code == 400, response.text
    (item,) = response.json()["detail"]
    assert item["loc"] == ["header", header.lower()]
    assert header.lower() in item["msg"].lower()


@pytest.mark.parametrize(
    "request_id",
    ["x" * 129, "order 1", "order\t1", "ordre-é", "<script>", "a/b"],
)
def test_a_request_id_that_is_not_a_short_safe_token_is_refused(
    artifact_dir: Path, request_id: str
) -> None:
    api = keyed_client(artifact_dir)
    response = api.post(
        "/api/v1/predict",
        json=TRANSACTION,
        headers={"X-Request-ID": request_id.encode(), **bearer(SCORING)},
    )
    assert response.status_code == 400, response.text
    assert response.json()["detail"][0]["loc"] == ["header", "x-request-id"]


@pytest.mark.parametrize("request_id", ["x" * 128, "order-2026-12-02T08:00:00.123Z", "a1_b2.c3"])
def test_a_short_safe_request_id_is_taken(artifact_dir: Path, request_id: str) -> None:
    api = keyed_client(artifact_dir)
    response = api.post(
        "/api/v1/predict",
        json=TRANSACTION,
        headers={"X-Request-ID": request_id, **bearer(SCORING)},
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/predict", TRANSACTION),
        ("/api/v1/predict", TRANSACTION | {"V14": -9.0, "Amount": 12.5}),
        ("/api/v1/predict/batch", BATCH),
        ("/api/v1/predict/columns", COLUMNS),
        # Refusals: the lean path hands these to FastAPI, so each path words them alike.
        ("/api/v1/predict", {"V1": 1.0}),
        ("/api/v1/predict", TRANSACTION | {"V1": "1"}),
        ("/api/v1/predict", TRANSACTION | {"Amount": -1.0}),
        ("/api/v1/predict/batch", {"transactions": []}),
        ("/api/v1/predict/columns", COLUMNS | {"V2": [0.5]}),
    ],
)
def test_the_lean_path_and_the_routes_answer_byte_for_byte_alike(
    artifact_dir: Path, path: str, body: object
) -> None:
    api = keyed_client(artifact_dir)
    headers = bearer(SCORING)
    lean = api.post(path, json=body, headers=headers)
    # A query the routes ignore takes the request past the lean path, to FastAPI's route.
    routed = api.post(f"{path}?routed=1", json=body, headers=headers)
    assert (lean.status_code, lean.content) == (routed.status_code, routed.content)
    assert lean.headers["content-type"] == routed.headers["content-type"]
