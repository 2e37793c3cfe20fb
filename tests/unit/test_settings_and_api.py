"""Settings, CORS and Sentry wiring of the API, with a real model scored in-process."""

import sys
import types
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from fraud_model.artifact import load_artifact
from fraud_model.features import FEATURE_NAMES
from serve_app.api import create_api
from serve_app.ingress import init_sentry
from serve_app.model import ServingModel, predictions
from serve_app.settings import ServiceSettings


class InProcessModel:
    """Stands in for the FraudModel handle: same `score.remote(row)` call, scored right here."""

    def __init__(self, artifact_dir: Path) -> None:
        artifact = load_artifact(artifact_dir)
        self.serving = ServingModel(str(artifact_dir), artifact, artifact.metadata.threshold)
        self.score = self

    async def remote(self, row: list[float]) -> dict:
        (prediction,) = predictions(self.serving, [row])
        return prediction


TRANSACTION = {name: 0.5 for name in FEATURE_NAMES}


def client(artifact_dir: Path, **settings: object) -> TestClient:
    return TestClient(create_api(InProcessModel(artifact_dir), ServiceSettings(**settings)))


def test_settings_come_from_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUD_CORS_ORIGINS", '["https://shop.example"]')
    monkeypatch.setenv("FRAUD_LOG_LEVEL", "debug")
    settings = ServiceSettings()
    assert settings.cors_origins == ["https://shop.example"]
    assert settings.log_level == "DEBUG"
    assert settings.sentry_dsn is None


def test_settings_read_a_dotenv_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("FRAUD_SENTRY_DSN=https://key@sentry.example/1\n")
    settings = ServiceSettings()
    assert settings.sentry_dsn is not None
    assert "key@" not in repr(settings)  # the DSN is a secret, never printed


@pytest.mark.parametrize(("name", "value"), [("cors_origins", ["*"]), ("log_level", "LOUD")])
def test_unsafe_or_unknown_settings_are_refused(name: str, value: object) -> None:
    with pytest.raises(ValidationError, match=name):
        ServiceSettings(**{name: value})


def test_no_cors_headers_by_default(artifact_dir: Path) -> None:
    response = client(artifact_dir).post(
        "/api/v1/predict", json=TRANSACTION, headers={"Origin": "https://evil.example"}
    )
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers


def test_cors_allows_only_configured_origins(artifact_dir: Path) -> None:
    api = client(artifact_dir, cors_origins=["https://shop.example"])
    allowed = api.options(
        "/api/v1/predict",
        headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"},
    )
    assert allowed.headers["access-control-allow-origin"] == "https://shop.example"
    other = api.post(
        "/api/v1/predict", json=TRANSACTION, headers={"Origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in other.headers


def test_sentry_is_initialised_with_the_dsn_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict] = []
    fake = types.SimpleNamespace(init=lambda **kwargs: calls.append(kwargs))
    monkeypatch.setitem(sys.modules, "sentry_sdk", fake)
    init_sentry("https://key@sentry.example/1")
    assert calls == [
        {
            "dsn": "https://key@sentry.example/1",
            "send_default_pii": False,
            "include_local_variables": False,  # frames would carry transaction values
            "traces_sample_rate": 0.0,
        }
    ]


def test_sentry_without_the_package_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sentry_sdk", None)  # import fails as if not installed
    with pytest.raises(RuntimeError, match="'sentry' extra"):
        init_sentry("https://key@sentry.example/1")


def test_api_keys_come_from_the_environment_and_stay_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FRAUD_API_KEYS", '["k-one-123", "k-two-456"]')
    settings = ServiceSettings()
    assert [key.get_secret_value() for key in settings.api_keys] == ["k-one-123", "k-two-456"]
    assert "k-one-123" not in repr(settings)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong-key"}, 401),
        ({"Authorization": "Basic k-two-456"}, 401),
        ({"X-API-Key": "k-two-45"}, 401),  # a prefix of a key is not the key
        ({"Authorization": "Bearer k-two-456"}, 200),
        ({"Authorization": "bearer k-one-123"}, 200),
        ({"X-API-Key": "k-one-123"}, 200),
    ],
)
def test_predict_needs_a_valid_api_key_when_keys_are_set(
    artifact_dir: Path, headers: dict, status: int
) -> None:
    api = client(artifact_dir, api_keys=["k-one-123", "k-two-456"])
    response = api.post("/api/v1/predict", json=TRANSACTION, headers=headers)
    assert response.status_code == status
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json() == {
            "detail": [
                {
                    "type": "unauthorized",
                    "loc": ["header", "authorization"],
                    "msg": "A valid API key is required",
                }
            ]
        }


def test_auth_is_checked_before_the_body(artifact_dir: Path) -> None:
    """Without a key, a caller learns nothing about the schema, not even from a bad body."""
    api = client(artifact_dir, api_keys=["k-one-123"])
    response = api.post("/api/v1/predict/batch", json={"transactions": "nonsense"})
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b'{"V1": "' + b"x" * 20_000 + b'"}', "application/json", 413),  # read: size limit
        (b"{not json", "application/json", 400),  # then parsed as JSON
        (b"[" * 5_000 + b"]" * 5_000, "application/json", 400),  # nested too deeply
        (b"", "application/json", 401),  # then the key, before everything else
        (b'{"V1": 1.0}', "text/plain", 401),
        (b'{"V1": "nonsense"}', "application/json", 401),
    ],
    ids=["too-large", "malformed", "too-deep", "empty", "wrong-type", "schema"],
)
def test_what_is_checked_before_the_api_key(
    artifact_dir: Path, content: bytes, content_type: str, status: int
) -> None:
    """The body's size and JSON syntax are checked before the key (413 and 400 say nothing
    about the schema); the content type and the schema only after it."""
    api = client(artifact_dir, api_keys=["k-one-123"])
    response = api.post("/api/v1/predict", content=content, headers={"content-type": content_type})
    assert response.status_code == status, response.text


def test_health_check_never_needs_a_key(artifact_dir: Path) -> None:
    api = client(artifact_dir, api_keys=["k-one-123"])
    assert api.get("/api/v1/utils/health-check/").json() is True
    assert api.get("/api/v1/model").status_code == 401


def test_the_api_is_open_without_configured_keys(artifact_dir: Path) -> None:
    assert client(artifact_dir).post("/api/v1/predict", json=TRANSACTION).status_code == 200


def prediction_records(caplog: pytest.LogCaptureFixture) -> list:
    return [record for record in caplog.records if record.getMessage() == "prediction"]


def test_predictions_are_logged_without_features_by_default(
    artifact_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="ray.serve.serve_app.api"):
        answer = client(artifact_dir).post("/api/v1/predict", json=TRANSACTION).json()
    (record,) = prediction_records(caplog)
    assert record.model_version == answer["model_version"]
    assert record.fraud_probability == answer["fraud_probability"]
    assert record.is_fraud == answer["is_fraud"]
    assert record.latency_ms >= 0
    assert not hasattr(record, "features")


def test_features_are_logged_only_with_the_debug_setting(
    artifact_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="ray.serve.serve_app.api"):
        client(artifact_dir, log_features=True).post("/api/v1/predict", json=TRANSACTION)
        client(artifact_dir, log_predictions=False).post("/api/v1/predict", json=TRANSACTION)
    (record,) = prediction_records(caplog)
    assert record.features == [0.5] * len(FEATURE_NAMES)
