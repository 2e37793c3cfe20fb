"""Service settings from the environment (prefix FRAUD_) or an optional `.env` file."""

import logging

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FRAUD_", env_file=".env", extra="ignore")

    cors_origins: list[str] = []
    """Origins allowed to call the API from a browser, as a JSON list. None by default: the
    checkout backend calls us server to server."""

    sentry_dsn: SecretStr | None = None
    """Sentry DSN; Sentry is initialised only when this is set (needs the `sentry` extra)."""

    log_level: str = "INFO"

    api_keys: list[SecretStr] = []
    """API keys accepted on the predict and model endpoints (`Authorization: Bearer <key>` or
    `X-API-Key`), as a JSON list. None by default: the API is open (e.g. behind a private ALB).
    The health check never needs a key."""

    log_predictions: bool = True
    """One JSON log line per prediction: request id, model version, score, decision, latency."""

    log_features: bool = False
    """Add the raw transaction to those lines. For debugging only: it logs card data."""

    @field_validator("cors_origins")
    @classmethod
    def refuse_wildcard(cls, origins: list[str]) -> list[str]:
        if "*" in origins:
            raise ValueError("a wildcard CORS origin is not allowed; list the origins")
        return origins

    @field_validator("log_level")
    @classmethod
    def known_level(cls, level: str) -> str:
        if not isinstance(logging.getLevelName(level.upper()), int):
            raise ValueError(f"unknown log level {level!r}")
        return level.upper()
