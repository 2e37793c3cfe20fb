"""API keys from a mounted Secret (FRAUD_KEYS_DIR), reloaded without a restart; each key's id in
the logs and records, never the key; a rate per key, refused with 429 and Retry-After over HTTP
and RESOURCE_EXHAUSTED over gRPC."""

import asyncio
import json
import logging
import os
from pathlib import Path

import grpc
import pytest
from pydantic import ValidationError

from serve_app.access import KeyRing, read_key_files
from serve_app.config import AppArgs
from serve_app.grpc_api import fraud_scoring_pb2 as pb
from serve_app.rate_limit import RateLimits, retry_after
from serve_app.routes import Role
from serve_app.settings import ServiceSettings
from tests.polling import wait_for
from tests.unit.api_client import TRANSACTION, client, ledger_in
from tests.unit.test_grpc_scoring import scoring

CHECKOUT, BACKOFFICE, OPERATOR = "c" * 40, "b" * 40, "o" * 40


def project_secret(directory: Path, files: dict[str, object]) -> None:
    """Write `files` as the kubelet projects a Secret: a new timestamped directory, then the
    `..data` link swapped to it at once, each file a link through `..data`."""
    directory.mkdir(exist_ok=True)
    version = directory / f"..{len(list(directory.glob('..2*')))}"
    generation = directory / f"..2{version.name[2:]}"
    generation.mkdir()
    for name, content in files.items():
        (generation / name).write_text(content if isinstance(content, str) else json.dumps(content))
    link = directory / "..data_tmp"
    link.symlink_to(generation.name)
    os.replace(link, directory / "..data")
    for name in files:
        if not (directory / name).is_symlink():
            (directory / name).symlink_to(f"..data/{name}")


def headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_keys_are_read_from_the_secret_files_with_their_ids(tmp_path: Path) -> None:
    secret = tmp_path / "keys"
    project_secret(
        secret,
        {
            "scoring": [{"id": "checkout-eu", "key": CHECKOUT}, BACKOFFICE],
            "operator": [{"id": "oncall", "key": OPERATOR, "rate_per_s": 5}],
        },
    )
    keys = {key.caller.key_id: key for key in read_key_files(secret)}
    assert set(keys) == {"checkout-eu", "oncall"} | {
        k for k in keys if k.startswith("key-") and len(k) == 16
    }
    assert len(keys) == 3
    assert keys["checkout-eu"].caller.role is Role.SCORING
    assert keys["oncall"].caller.role is Role.OPERATOR and keys["oncall"].rate_per_s == 5


def test_a_revoked_key_is_refused_without_a_restart_and_the_others_go_on(
    artifact_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = tmp_path / "keys"
    project_secret(secret, {"scoring": [CHECKOUT, BACKOFFICE], "operator": [OPERATOR]})
    decisions = ledger_in(tmp_path / "ledger")
    with caplog.at_level(logging.INFO, logger="ray.serve.serve_app.access"):
        http = client(artifact_dir, AppArgs(), decisions, keys_dir=secret, keys_reload_s=0.05)
        assert http.post("/api/v1/predict", json=TRANSACTION, headers=headers(CHECKOUT)).is_success
        # The Secret is updated: CHECKOUT revoked, a new key added, under a name.
        renamed = [BACKOFFICE, {"id": "checkout-eu-2", "key": "n" * 40}]
        project_secret(secret, {"scoring": renamed, "operator": [OPERATOR]})

        def refused() -> bool:
            answer = http.post("/api/v1/predict", json=TRANSACTION, headers=headers(CHECKOUT))
            return answer.status_code == 401

        assert wait_for(refused, timeout_s=10)
        for key in (BACKOFFICE, "n" * 40, OPERATOR):
            assert http.post("/api/v1/predict", json=TRANSACTION, headers=headers(key)).is_success
    decisions.writer.flush()
    logged = caplog.text
    assert "API keys reloaded" in logged and "checkout-eu-2" in logged
    assert not any(key in logged for key in (CHECKOUT, BACKOFFICE, OPERATOR, "n" * 40))


def test_a_bad_key_file_is_refused_whole_and_the_keys_before_it_stay(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = tmp_path / "keys"
    project_secret(secret, {"scoring": [CHECKOUT], "operator": [OPERATOR]})
    ring = KeyRing.from_settings(
        ServiceSettings(keys_dir=secret, keys_reload_s=0.01), allow_anonymous=False
    )
    short = "x" * 10
    project_secret(secret, {"scoring": [BACKOFFICE, short], "operator": [OPERATOR]})

    def tried() -> bool:
        ring.caller(CHECKOUT.encode())  # a request after the interval looks at the files
        return "not reloaded" in caplog.text

    with caplog.at_level(logging.ERROR, logger="ray.serve.serve_app.access"):
        assert wait_for(tried, timeout_s=5, every_s=0.02)
    assert ring.caller(CHECKOUT.encode()) is not None  # the previous keys stay
    assert ring.caller(BACKOFFICE.encode()) is None
    assert "item 1" in caplog.text and short not in caplog.text and BACKOFFICE not in caplog.text


def test_keys_come_from_the_files_or_the_environment_never_both(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="either FRAUD_KEYS_DIR"):
        ServiceSettings(keys_dir=tmp_path, api_keys=[CHECKOUT])


def test_a_key_over_its_rate_gets_429_with_retry_after(artifact_dir: Path, tmp_path: Path) -> None:
    secret = tmp_path / "keys"
    slow = {"id": "batch-job", "key": CHECKOUT, "rate_per_s": 0.001}  # one per 1,000 s
    project_secret(secret, {"scoring": [slow, BACKOFFICE], "operator": [OPERATOR]})
    decisions = ledger_in(tmp_path / "ledger")
    http = client(artifact_dir, AppArgs(), decisions, keys_dir=secret)
    assert http.post("/api/v1/predict", json=TRANSACTION, headers=headers(CHECKOUT)).is_success
    over = http.post("/api/v1/predict", json=TRANSACTION, headers=headers(CHECKOUT))
    assert over.status_code == 429
    assert over.headers["Retry-After"] == "1000"
    assert over.json()["detail"][0]["type"] == "rate_limited"
    # Another key is not slowed by it.
    assert http.post("/api/v1/predict", json=TRANSACTION, headers=headers(BACKOFFICE)).is_success
    decisions.writer.flush()


def test_over_grpc_the_same_rate_gives_resource_exhausted(
    session_artifact: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "keys"
    slow = {"id": "batch-job", "key": CHECKOUT, "rate_per_s": 0.001}
    project_secret(secret, {"scoring": [slow], "operator": [OPERATOR]})
    keys = KeyRing.from_settings(ServiceSettings(keys_dir=secret), allow_anonymous=False)
    grpc_scoring = scoring(session_artifact, keys)
    message = pb.Transaction(**{name: 0.5 for name in TRANSACTION})
    metadata = [("authorization", f"Bearer {CHECKOUT}")]
    first = asyncio.run(grpc_scoring.predict(message, metadata))
    assert isinstance(first.answer, pb.Prediction)
    second = asyncio.run(grpc_scoring.predict(message, metadata)).answer
    assert not isinstance(second, pb.Prediction)
    assert second.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert json.loads(second.details)["detail"][0]["type"] == "rate_limited"


def test_the_bucket_refills_at_the_rate_and_holds_a_burst() -> None:
    now = [0.0]
    limits = RateLimits(burst_s=2.0, clock=lambda: now[0])
    assert [limits.wait_s("k", 5.0) for _ in range(10)] == [0.0] * 10  # 2 s of 5/s at once
    assert limits.wait_s("k", 5.0) == pytest.approx(0.2)
    now[0] = 0.2
    assert limits.wait_s("k", 5.0) == 0.0
    assert limits.wait_s("other", 5.0) == 0.0  # each key its own bucket
    assert retry_after(0.2) == 1 and retry_after(3.5) == 4


def test_the_key_ring_never_shows_a_key(tmp_path: Path) -> None:
    secret = tmp_path / "keys"
    project_secret(secret, {"scoring": [CHECKOUT], "operator": [OPERATOR]})
    ring = KeyRing.from_settings(ServiceSettings(keys_dir=secret), allow_anonymous=False)
    assert CHECKOUT not in repr(ring) and OPERATOR not in repr(ring)


def test_emptying_the_files_never_opens_the_api_and_keys_close_an_anonymous_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = tmp_path / "keys"
    project_secret(secret, {"scoring": [CHECKOUT], "operator": []})
    settings = ServiceSettings(keys_dir=secret, keys_reload_s=0.01)
    ring = KeyRing.from_settings(settings, allow_anonymous=False)
    project_secret(secret, {"scoring": [], "operator": []})

    def refused_reload() -> bool:
        ring.caller(b"")
        return "no key left" in caplog.text

    with caplog.at_level(logging.ERROR, logger="ray.serve.serve_app.access"):
        assert wait_for(refused_reload, timeout_s=5, every_s=0.02)
    assert ring.caller(b"") is None  # not anonymous
    assert ring.caller(CHECKOUT.encode()) is not None  # still the keys before
    # A local service that started without keys (allowed) is closed once keys appear.
    empty = tmp_path / "none"
    project_secret(empty, {"scoring": [], "operator": []})
    local = KeyRing.from_settings(
        ServiceSettings(keys_dir=empty, keys_reload_s=0.01), allow_anonymous=True
    )
    assert local.caller(b"") is not None
    project_secret(empty, {"scoring": [CHECKOUT], "operator": []})
    assert wait_for(lambda: local.caller(b"") is None, timeout_s=5, every_s=0.02)
    assert local.caller(CHECKOUT.encode()) is not None
