"""Service settings from the environment (prefix FRAUD_) or an optional `.env` file."""

import logging
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_KEY_LENGTH = 32


def key_problem(value: str) -> str | None:
    """What is wrong with a key, never quoting it; None if nothing."""
    if len(value) < MIN_KEY_LENGTH:
        return f"is shorter than {MIN_KEY_LENGTH} characters"
    if value != value.strip() or any(char.isspace() for char in value):
        return "contains white space"
    return None


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FRAUD_",
        env_file=".env",
        extra="ignore",
        hide_input_in_errors=True,  # a refused setting may be a secret: never echo it
    )

    cors_origins: list[str] = []
    """Origins allowed to call the API from a browser, as a JSON list. None by default: the
    checkout backend calls us server to server."""

    sentry_dsn: SecretStr | None = None
    """Sentry DSN; Sentry is initialised only when this is set (needs the `sentry` extra)."""

    log_level: str = "INFO"

    api_keys: list[SecretStr] = []
    """Scoring keys: accepted on the predict endpoints (`Authorization: Bearer <key>` or
    `X-API-Key`), as a JSON list of strings of at least MIN_KEY_LENGTH characters. In production
    they come from a Kubernetes Secret. Without any key, the Ingress refuses to start unless the
    app's `allow_anonymous` argument says otherwise. The health check never needs a key."""

    operator_keys: list[SecretStr] = []
    """Operator keys: needed for the operator endpoints and `explain=true`, and accepted wherever
    a scoring key is. Same format as `api_keys`; a key may not be in both lists."""

    keys_dir: Path | None = None
    """A directory holding the keys as files (a mounted Kubernetes Secret): `scoring` and
    `operator`, each a JSON list of keys or of `{"id": ..., "key": ..., "rate_per_s": ...}`
    (serve_app.access). Re-read when they change, without a restart. Instead of `api_keys` and
    `operator_keys`, never beside them."""

    keys_reload_s: float = Field(10.0, gt=0, le=300)
    """How often (at most) an Ingress replica checks `keys_dir` for changed keys: at the first
    request after this many seconds."""

    key_rate_per_s: float = Field(500.0, gt=0)
    """Requests per second each key may send to one Ingress replica (a key's own `rate_per_s`
    in `keys_dir` replaces it); beyond it, 429 with Retry-After."""

    key_burst_s: float = Field(1.0, gt=0, le=60)
    """How many seconds' worth of its rate a key may send at once."""

    artifact_cache: Path = Field(
        default_factory=lambda: Path.home() / ".cache" / "fraud-serving" / "artifacts"
    )
    """Where a model replica keeps the verified artifacts it downloaded from `s3://`."""

    artifact_max_bytes: int = Field(1 << 30, gt=0)
    """The most bytes a model replica downloads for one artifact: a larger one is refused before
    it is written (its metadata.json records every file's size). Half the pods' cache volume,
    so that the serving model and the next one fit during a rollout."""

    @field_validator("cors_origins")
    @classmethod
    def refuse_wildcard(cls, origins: list[str]) -> list[str]:
        if "*" in origins:
            raise ValueError("a wildcard CORS origin is not allowed; list the origins")
        return origins

    @field_validator("api_keys", "operator_keys")
    @classmethod
    def strong_keys(cls, keys: list[SecretStr]) -> list[SecretStr]:
        for index, key in enumerate(keys):
            # The value is never echoed: the message names the key by its position only.
            problem = key_problem(key.get_secret_value())
            if problem is not None:
                raise ValueError(f"key {index} {problem}")
        return keys

    @model_validator(mode="after")
    def separate_roles(self) -> "ServiceSettings":
        scoring = {key.get_secret_value() for key in self.api_keys}
        if any(key.get_secret_value() in scoring for key in self.operator_keys):
            raise ValueError("a key is both a scoring key and an operator key; use separate keys")
        if self.keys_dir is not None and (self.api_keys or self.operator_keys):
            raise ValueError("set either FRAUD_KEYS_DIR or FRAUD_API_KEYS/FRAUD_OPERATOR_KEYS")
        return self

    @field_validator("log_level")
    @classmethod
    def known_level(cls, level: str) -> str:
        if not isinstance(logging.getLevelName(level.upper()), int):
            raise ValueError(f"unknown log level {level!r}")
        return level.upper()
