"""The whole application on Serve under a route prefix other than `/` (as when a second
application is put beside it), with API keys: no endpoint answers without its key."""

import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from ray import serve

from tests.helpers import endpoint_calls
from tests.serve.serving import deploy_keyed_app

pytestmark = [pytest.mark.ray, pytest.mark.serve]
SCORING, OPERATOR = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
TRANSACTION = {**{f"V{i}": 0.5 for i in range(1, 29)}, "Amount": 12.5}


@pytest.fixture(scope="module")
def keyed_app(serve_url: str, session_artifact: Path) -> Iterator[str]:
    """The application with keys and without anonymous access, at /keyed; yields its URL."""
    prefix = deploy_keyed_app("keyed", session_artifact, SCORING, OPERATOR)
    yield serve_url + prefix
    serve.delete("keyed")


def test_under_a_route_prefix_no_endpoint_answers_without_its_key(keyed_app: str) -> None:
    with httpx.Client(base_url=keyed_app, timeout=30) as client:
        for method, path, body, role, answer in endpoint_calls(TRANSACTION, ledger=False):
            anonymous, scoring, operator = (
                client.request(method, path, json=body, headers=headers).status_code
                for headers in ({}, bearer(SCORING), bearer(OPERATOR))
            )
            assert operator == answer, (path, operator)
            if role == 0:
                assert (anonymous, scoring) == (200, 200), path
            else:
                assert anonymous == 401, (path, anonymous)
                assert scoring == (403 if role == 2 else operator), (path, scoring)
        # A route the API does not have needs a key too.
        assert client.get("/api/v1/nothing-here").status_code == 401


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
