"""What the Ingress sends the model and what the model answers, without Ray."""

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from fraud_model.artifact import load_artifact
from fraud_model.features import FEATURE_NAMES
from serve_app.model import ServingModel, predictions
from serve_app.schemas import batch_request_model
from tests.helpers import as_json, random_transactions


def test_a_batch_becomes_one_float32_matrix_in_contract_order() -> None:
    rows = random_transactions(5)
    shuffled = [dict(reversed(list(as_json(row).items()))) for row in rows]
    request = batch_request_model(10).model_validate_json(json.dumps({"transactions": shuffled}))
    matrix = request.feature_matrix()
    assert matrix.dtype == np.float32 and matrix.shape == (5, len(FEATURE_NAMES))
    np.testing.assert_array_equal(matrix, rows)


def test_matrices_and_lists_of_rows_score_alike(artifact_dir: Path) -> None:
    artifact = load_artifact(artifact_dir)
    serving = ServingModel(str(artifact_dir), None, artifact, artifact.metadata.threshold)
    rows = random_transactions(7)
    from_lists = predictions(serving, rows.tolist())
    assert predictions(serving, rows) == from_lists
    assert all(type(answer["fraud_probability"]) is float for answer in from_lists)


def test_a_score_that_is_not_a_number_is_never_answered() -> None:
    # The response writer would send NaN as null: predictions() must refuse it first.
    broken = SimpleNamespace(
        fraud_probability=lambda features: np.array([0.1, np.nan]),
        metadata=SimpleNamespace(model_version="broken"),
    )
    serving = ServingModel("memory://broken", None, broken, 0.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-finite"):
        predictions(serving, [[0.0] * len(FEATURE_NAMES)] * 2)
