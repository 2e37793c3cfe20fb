"""Settings, CORS and Sentry wiring of the API, with a real model scored in-process."""

import sys
import types
from pathlib import Path

import pytest
from pydantic import ValidationError

from serve_app.config import AppArgs
from serve_app.ingress import init_sentry, without_request_data
from serve_app.settings import ServiceSettings
from tests.unit.api_client import TRANSACTION, client


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
    ignored: list[str] = []
    fake = types.SimpleNamespace(init=lambda **kwargs: calls.append(kwargs))
    logging_integration = types.SimpleNamespace(ignore_logger=ignored.append)
    monkeypatch.setitem(sys.modules, "sentry_sdk", fake)
    monkeypatch.setitem(sys.modules, "sentry_sdk.integrations", types.SimpleNamespace())
    monkeypatch.setitem(sys.modules, "sentry_sdk.integrations.logging", logging_integration)
    init_sentry("https://key@sentry.example/1")
    assert calls == [
        {
            "dsn": "https://key@sentry.example/1",
            "send_default_pii": False,
            "include_local_variables": False,  # frames would carry transaction values
            "max_request_body_size": "never",
            "max_breadcrumbs": 0,  # the log lines before an error
            "before_send": without_request_data,
            "traces_sample_rate": 0.0,
        }
    ]
    # Every logger of the decision ledger, whose lines speak of records.
    assert {"ledger", "ledger.writer", "ledger.outcomes", "ledger.files"} <= set(ignored)
    from ledger.writer import logger as ledger_writer

    assert ledger_writer.name in ignored


def test_sentry_events_keep_nothing_of_the_request_but_method_and_path() -> None:
    event = {
        "message": "boom",
        "request": {
            "method": "POST",
            "url": "http://127.0.0.1:8000/api/v1/predict?explain=true",
            "data": {"Amount": 1234.5},
            "headers": {"Authorization": "Bearer s3cret"},
            "cookies": {"session": "x"},
            "query_string": "explain=true",
        },
    }
    event["breadcrumbs"] = {"values": [{"message": "Ledger file ... amounts 1234.5"}]}
    assert without_request_data(event, {}) == {
        "message": "boom",
        "request": {"method": "POST", "url": "http://127.0.0.1:8000/api/v1/predict"},
    }


def test_sentry_without_the_package_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sentry_sdk", None)  # import fails as if not installed
    with pytest.raises(RuntimeError, match="'sentry' extra"):
        init_sentry("https://key@sentry.example/1")


def test_docs_are_served_from_the_service_itself_under_the_prefix(artifact_dir: Path) -> None:
    api = client(artifact_dir)
    page = api.get("/api/v1/docs").text
    assert 'src="/api/v1/docs/static/swagger-ui-bundle.js"' in page
    assert 'href="/api/v1/docs/static/swagger-ui.css"' in page
    assert "http://" not in page and "https://" not in page  # nothing from a CDN
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert api.get(f"/api/v1/docs/static/{asset}").status_code == 200
    assert api.get("/api/v1/docs/oauth2-redirect").status_code == 200
    paths = {route.path for route in api.app.routes if hasattr(route, "path")}
    assert {path for path in paths if not path.startswith("/api/v1/")} == {"/"}
    root = api.get("/", follow_redirects=False)
    assert root.status_code == 307 and root.headers["location"] == "/api/v1/docs"


def test_without_docs_there_is_no_spec_no_page_and_no_redirect(artifact_dir: Path) -> None:
    api = client(artifact_dir, AppArgs(allow_anonymous=True, openapi_docs=False))
    for path in ("/api/v1/docs", "/api/v1/openapi.json", "/api/v1/docs/static/swagger-ui.css", "/"):
        response = api.get(path, follow_redirects=False)
        assert response.status_code == 404, path
        assert response.json()["detail"][0]["type"] == "not_found"
