"""Property tests over real HTTP: any valid transaction scores in [0, 1] and matches the model;
the batch endpoint equals the single endpoint row by row; a bounded schemathesis run over the
OpenAPI spec finds no 5xx and no answer outside its documented schema."""

import secrets
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from fraud_model.artifact import load_artifact
from fraud_model.features import FEATURE_NAMES
from serve_app.schemas import MAX_ABS_COMPONENT, MAX_AMOUNT
from tests.serve.serving import deploy_keyed_app

pytestmark = [pytest.mark.ray, pytest.mark.serve]

PROPERTY_SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def feature(name: str) -> st.SearchStrategy[float]:
    low, high = (0.0, MAX_AMOUNT) if name == "Amount" else (-MAX_ABS_COMPONENT, MAX_ABS_COMPONENT)
    return st.floats(low, high, allow_nan=False, allow_infinity=False)


transactions = st.fixed_dictionaries({name: feature(name) for name in FEATURE_NAMES})


@pytest.fixture(scope="module")
def model(session_artifact: Path):
    return load_artifact(session_artifact)


@PROPERTY_SETTINGS
@given(transaction=transactions)
def test_any_valid_transaction_scores_in_0_1_as_the_model_does(
    client: httpx.Client, model, transaction: dict[str, float]
) -> None:
    response = client.post("/api/v1/predict", json=transaction)
    assert response.status_code == 200
    answer = response.json()
    assert 0.0 <= answer["fraud_probability"] <= 1.0
    row = np.array([[transaction[name] for name in FEATURE_NAMES]])
    assert answer["fraud_probability"] == pytest.approx(model.fraud_probability(row)[0], abs=1e-12)
    assert answer["is_fraud"] is (answer["fraud_probability"] >= answer["threshold"])


@PROPERTY_SETTINGS
@given(batch=st.lists(transactions, min_size=1, max_size=12))
def test_batch_equals_single_row_by_row(client: httpx.Client, batch: list[dict]) -> None:
    response = client.post("/api/v1/predict/batch", json={"transactions": batch})
    assert response.status_code == 200
    answers = response.json()["predictions"]
    assert len(answers) == len(batch)
    for transaction, answer in zip(batch, answers, strict=True):
        single = client.post("/api/v1/predict", json=transaction).json()
        assert answer == single


CONTRACT_EXAMPLES = 30  # per operation and generation mode
OPERATOR = secrets.token_urlsafe(32)


@pytest.fixture(scope="module")
def keyed_app(
    serve_url: str, session_artifact: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The app with keys, as in production, and a ledger of its own; its URL."""
    from ray import serve

    ledger = tmp_path_factory.mktemp("contract-ledger")
    prefix = deploy_keyed_app(
        "contract", session_artifact, secrets.token_urlsafe(32), OPERATOR, ledger
    )
    yield serve_url + prefix
    serve.delete("contract")


@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda mode: mode.value)
def test_openapi_contract_holds_for_generated_requests(
    keyed_app: str, mode: GenerationMode
) -> None:
    """Every operation in the spec, with generated valid (positive) or invalid (negative) inputs.

    Default checks: no 5xx, status codes, bodies, content types and headers as documented, in
    negative mode that invalid input is refused with a 4xx, never scored, and that an operation
    the spec says needs a key refuses a request without one. Sent with an operator key.
    (Driven through Hypothesis directly: schemathesis's pytest plugin does not load under
    pytest 9.)
    """
    fraud_app = keyed_app
    schema = schemathesis.openapi.from_url(f"{fraud_app}/api/v1/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {
        "POST /api/v1/predict",
        "POST /api/v1/predict/batch",
        "GET /api/v1/model",
        "GET /api/v1/utils/health-check/",
    }
    if mode is GenerationMode.NEGATIVE:
        # Invalid input needs an input: the GETs without parameters have nothing to break.
        operations = [op for op in operations if len(op.body) or any(op.iter_parameters())]
        assert {op.label for op in operations} >= {
            "POST /api/v1/predict",
            "POST /api/v1/predict/batch",
        }
    statuses: Counter = Counter()
    for operation in operations:

        @settings(
            max_examples=CONTRACT_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def conforms(case) -> None:
            response = case.call(
                base_url=fraud_app, timeout=30, headers={"Authorization": f"Bearer {OPERATOR}"}
            )
            statuses[response.status_code] += 1
            if mode is GenerationMode.POSITIVE and unequal_columns(response):
                return  # JSON Schema cannot say that every column has the same length
            case.validate_response(response)

        conforms()
    assert statuses, "no request was generated"
    assert all(status < 500 for status in statuses), statuses
    print(f"schemathesis {mode.value}: {dict(sorted(statuses.items()))}")


def unequal_columns(response) -> bool:
    """A columnar batch refused only because its columns differ in length."""
    if response.status_code != 422:
        return False
    detail = response.json()["detail"]
    return all("every column needs one value per transaction" in item["msg"] for item in detail)
