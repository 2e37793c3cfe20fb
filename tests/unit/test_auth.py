"""API keys: scoring and operator roles, checked before the body is read; no anonymous access
unless the config allows it; keys that are long, distinct and never echoed."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from serve_app.access import MissingApiKeysError
from serve_app.config import AppArgs
from serve_app.settings import ServiceSettings
from tests.unit.api_client import TRANSACTION, client

SCORING = "s" * 31 + "1"
SCORING_2 = "s" * 31 + "2"
OPERATOR = "o" * 40
KEYS = {"api_keys": [SCORING, SCORING_2], "operator_keys": [OPERATOR]}
SECURE = AppArgs()  # what production runs: allow_anonymous is off by default


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def refusal(status: int, kind: str, msg: str) -> dict:
    assert status in (401, 403)
    return {"detail": [{"type": kind, "loc": ["header", "authorization"], "msg": msg}]}


def test_without_keys_the_api_refuses_to_start_unless_anonymous_access_is_allowed(
    artifact_dir: Path,
) -> None:
    with pytest.raises(MissingApiKeysError, match="FRAUD_API_KEYS"):
        client(artifact_dir, SECURE)
    anonymous = client(artifact_dir, AppArgs(allow_anonymous=True))
    assert anonymous.post("/api/v1/predict", json=TRANSACTION).status_code == 200
    assert anonymous.get("/api/v1/model").status_code == 200


def test_configured_keys_are_enforced_even_where_anonymous_access_is_allowed(
    artifact_dir: Path,
) -> None:
    api = client(artifact_dir, AppArgs(allow_anonymous=True), **KEYS)
    assert api.post("/api/v1/predict", json=TRANSACTION).status_code == 401


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        (bearer("wrong-" + SCORING), 401),
        ({"Authorization": f"Basic {SCORING}"}, 401),
        ({"X-API-Key": SCORING[:-1]}, 401),  # a prefix of a key is not the key
        ({"Authorization": "Bearer "}, 401),  # an empty key never matches
        ({"X-API-Key": ""}, 401),
        (bearer(SCORING_2), 200),
        ({"Authorization": f"bearer {SCORING}"}, 200),
        ({"X-API-Key": SCORING}, 200),
        (bearer(OPERATOR), 200),  # an operator key may score too
    ],
)
def test_predict_needs_a_scoring_or_operator_key(
    artifact_dir: Path, headers: dict, status: int
) -> None:
    api = client(artifact_dir, SECURE, **KEYS)
    for path, body in [
        ("/api/v1/predict", TRANSACTION),
        ("/api/v1/predict/batch", {"transactions": [TRANSACTION]}),
    ]:
        response = api.post(path, json=body, headers=headers)
        assert response.status_code == status, (path, response.text)
        if status == 401:
            assert response.headers["www-authenticate"] == "Bearer"
            assert response.json() == refusal(401, "unauthorized", "A valid API key is required")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/model"),
        ("POST", "/api/v1/predict?explain=true"),
        ("POST", "/api/v1/predict?explain=1&top_k=3"),
        ("POST", "/api/v1/predict?explain=false&explain=yes"),  # any true value counts
        ("POST", "/api/v1/predict/batch?explain=True"),
    ],
)
def test_the_model_endpoint_and_reason_codes_need_an_operator_key(
    artifact_dir: Path, method: str, path: str
) -> None:
    api = client(artifact_dir, SECURE, **KEYS)
    body = {"transactions": [TRANSACTION]} if "batch" in path else TRANSACTION
    kwargs = {"json": body} if method == "POST" else {}
    scoring = api.request(method, path, headers=bearer(SCORING), **kwargs)
    assert scoring.status_code == 403
    assert scoring.json() == refusal(
        403,
        "forbidden",
        "This needs an operator key (GET /api/v1/model, GET /api/v1/model/challenger, POST "
        "/api/v1/outcomes, and explain=true on /api/v1/predict, /api/v1/predict/batch)",
    )
    assert api.request(method, path, **kwargs).status_code == 401
    operator = api.request(method, path, headers=bearer(OPERATOR), **kwargs)
    assert operator.status_code == 200, operator.text


def test_explain_false_needs_only_a_scoring_key(artifact_dir: Path) -> None:
    api = client(artifact_dir, SECURE, **KEYS)
    response = api.post("/api/v1/predict?explain=false", json=TRANSACTION, headers=bearer(SCORING))
    assert response.status_code == 200 and "explanation" not in response.json()


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b'{"V1": "' + b"x" * 20_000 + b'"}', "application/json", 413),  # over the size limit
        (b"{not json", "application/json", 400),
        (b"[" * 5_000 + b"]" * 5_000, "application/json", 400),  # nested too deeply
        (b"", "application/json", 400),
        (b'{"V1": 1.0}', "text/plain", 415),
        (b'{"V1": "nonsense"}', "application/json", 422),
    ],
    ids=["too-large", "malformed", "too-deep", "empty", "wrong-type", "schema"],
)
def test_the_key_is_checked_before_the_body_is_read(
    artifact_dir: Path, content: bytes, content_type: str, status: int
) -> None:
    """Without a key, nothing of the body is read: no 413, 400, 415 or 422 tells a caller
    anything about the limits or the schema."""
    api = client(artifact_dir, SECURE, **KEYS)
    response = api.post("/api/v1/predict", content=content, headers={"content-type": content_type})
    assert response.status_code == 401, response.text
    with_key = api.post(
        "/api/v1/predict",
        content=content,
        headers={"content-type": content_type, **bearer(SCORING)},
    )
    assert with_key.status_code == status, with_key.text


def test_the_health_check_needs_no_key_and_an_unknown_path_does(artifact_dir: Path) -> None:
    api = client(artifact_dir, SECURE, **KEYS)
    assert api.get("/api/v1/utils/health-check/").json() is True
    assert api.get("/api/v1/nothing-here").status_code == 401
    assert api.get("/api/v1/nothing-here", headers=bearer(SCORING)).status_code == 404


def test_keys_come_from_the_environment_and_stay_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUD_API_KEYS", f'["{SCORING}", "{SCORING_2}"]')
    monkeypatch.setenv("FRAUD_OPERATOR_KEYS", f'["{OPERATOR}"]')
    settings = ServiceSettings()
    assert [key.get_secret_value() for key in settings.api_keys] == [SCORING, SCORING_2]
    assert [key.get_secret_value() for key in settings.operator_keys] == [OPERATOR]
    assert SCORING not in repr(settings) and OPERATOR not in repr(settings)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"api_keys": ["short-key"]}, "key 0 is shorter than 32 characters"),
        ({"api_keys": [SCORING, ""]}, "key 1 is shorter than 32"),
        ({"operator_keys": [" " + OPERATOR]}, "key 0 contains white space"),
        ({"api_keys": [SCORING], "operator_keys": [SCORING]}, "both a scoring key and an operator"),
    ],
)
def test_weak_or_shared_keys_are_refused_without_echoing_them(settings: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as refused:
        ServiceSettings(**settings)
    for key in [*settings.get("api_keys", []), *settings.get("operator_keys", [])]:
        if key.strip():
            assert key.strip() not in str(refused.value)
