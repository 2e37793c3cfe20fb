"""Helpers shared by every test tier: the project root, real rows and artifacts, S3 uploads.
Fixtures live in the conftest files; tests import helpers from here, never from a conftest."""

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fraud_model.drift import reference_bins
from fraud_model.features import FEATURE_NAMES
from fraud_model.metadata import ArtifactMetadata, Calibration, DataFingerprint, ScoreBins
from fraud_model.prior import adjust_to_prior
from training.data import Dataset

if TYPE_CHECKING:  # scikit-learn is imported where a forest is made: every pytest process,
    # the xdist controller among them, imports this module, and most never make one
    from sklearn.ensemble import RandomForestClassifier

PROJECT_ROOT = Path(__file__).resolve().parent.parent


# How often the test session's cluster exports its metrics (Ray's default is 10 s): a test that
# waits for a count waits a few of these, and "settled" means unchanged for longer than one. A
# gauge whose export is two of these late is dropped from the endpoint until the next one.
METRICS_EXPORT_S = 5.0

S3_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": "/dev/null",  # never the developer's own AWS config or credentials
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def write_artifact(
    path: Path,
    model: "RandomForestClassifier",
    dataset: Dataset,
    threshold: float = 0.5,
    **save_options: Any,
) -> ArtifactMetadata:
    """save_artifact with test defaults; `save_options` (score_bins, extra_files, report_file,
    overwrite) are passed through. The drift reference defaults to the first 200 rows' scores."""
    from training.export import forest_to_onnx
    from training.save import save_artifact

    calibration = Calibration(training_prior=dataset.fraud_rate, production_prior=0.00172)
    if "score_bins" not in save_options:
        raw = model.predict_proba(dataset.features[:200])[:, 1]
        scores = adjust_to_prior(raw, calibration.training_prior, calibration.production_prior)
        edges, shares = reference_bins(scores)
        save_options["score_bins"] = ScoreBins(edges=edges, shares=shares)
    return save_artifact(
        path,
        model,
        forest_to_onnx(model),
        dataset.features[:200],
        threshold=threshold,
        threshold_strategy="fixed (test)",
        calibration=calibration,
        training_params={"n_estimators": model.n_estimators},
        data=DataFingerprint(**dataset.fingerprint.model_dump()),
        metrics={},
        **save_options,
    )


def write_other_artifact(
    path: Path,
    dataset: Dataset,
    *,
    seed: int,
    threshold: float,
    n_estimators: int = 7,
    max_depth: int = 5,
) -> Path:
    """Train a small forest of its own on `dataset` (another model than the session's) and write
    it as an artifact at `path`."""
    from sklearn.ensemble import RandomForestClassifier

    forest = RandomForestClassifier(
        n_estimators=n_estimators, max_depth=max_depth, random_state=seed
    ).fit(dataset.features, dataset.labels)
    write_artifact(path, forest, dataset, threshold=threshold)
    return path


def assert_same_answers(columnar: dict[str, Any], predictions: list[dict[str, Any]]) -> None:
    """A columnar answer holds the same decisions, in order, as a batch answer's predictions."""
    assert columnar["fraud_probability"] == [p["fraud_probability"] for p in predictions]
    assert columnar["is_fraud"] == [p["is_fraud"] for p in predictions]
    assert columnar["model_version"] == predictions[0]["model_version"]


def random_transactions(n: int, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(n, 29)).astype(np.float32)
    rows[:, -1] = np.abs(rows[:, -1]) * 100  # Amount: never negative
    return rows


def as_json(row: np.ndarray) -> dict[str, float]:
    return {name: float(value) for name, value in zip(FEATURE_NAMES, row, strict=True)}


def upload_files(artifact_dir: Path, bucket: str, prefix: str) -> str:
    """Copy an artifact directory's files to s3://bucket/prefix as they are (creating the
    bucket), bypassing publish: for tests of what a replica does with a store it cannot trust."""
    import boto3

    client = boto3.client("s3")
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        client.create_bucket(Bucket=bucket)
    for file in artifact_dir.iterdir():
        client.put_object(Bucket=bucket, Key=f"{prefix}/{file.name}", Body=file.read_bytes())
    return f"s3://{bucket}/{prefix}"


def upload_artifact(artifact_dir: Path, bucket: str, base: str) -> str:
    """The artifact's files at s3://bucket/base/<model_version>, where a published version lives
    (as upload_files: nothing is checked, nothing is refused); returns that URI."""
    version = json.loads((artifact_dir / "metadata.json").read_text())["model_version"]
    return upload_files(artifact_dir, bucket, f"{base}/{version}")


def expected_agreement(champion: Path, challenger: Path, rows: np.ndarray) -> dict[str, int]:
    """How the two artifacts' decisions on `rows` agree, each by its own threshold, counted as
    the challenger comparison counts them."""
    from fraud_model.artifact import load_artifact

    models = load_artifact(champion), load_artifact(challenger)
    mine, theirs = (model.fraud_probability(rows) >= model.metadata.threshold for model in models)
    return {
        "both_flag": int((mine & theirs).sum()),
        "both_pass": int((~mine & ~theirs).sum()),
        "only_champion_flags": int((mine & ~theirs).sum()),
        "only_challenger_flags": int((~mine & theirs).sum()),
    }


def endpoint_calls(
    transaction: dict[str, float], ledger: bool = True
) -> list[tuple[str, str, Any, int, int]]:
    """Every endpoint of the API as a client calls it, with valid bodies built from
    `transaction`: (method, path with any query, JSON body or None, the role it needs: 0 none,
    1 a scoring key, 2 an operator key, and the status it answers with that key: 503 for the
    outcomes without a `ledger`, 404 for the challenger while there is none)."""
    batch = {"transactions": [transaction, transaction | {"V14": -9.0}]}
    columns = {name: [value, value] for name, value in transaction.items()}
    outcome = {"request_id": "r-1", "is_fraud": True, "source": "chargeback"}
    outcomes = {"outcomes": [outcome | {"reported_at": datetime.now(UTC).isoformat()}]}
    calls = [
        ("POST", "/api/v1/predict", transaction, 1),
        ("POST", "/api/v1/predict?explain=false", transaction, 1),
        ("POST", "/api/v1/predict?explain=true", transaction, 2),
        ("POST", "/api/v1/predict/batch", batch, 1),
        ("POST", "/api/v1/predict/batch?explain=1&top_k=3", batch, 2),
        ("POST", "/api/v1/predict/columns", columns, 1),
        ("GET", "/api/v1/model", None, 2),
        ("GET", "/api/v1/model/challenger", None, 2),
        ("POST", "/api/v1/outcomes", outcomes, 2),
        ("GET", "/api/v1/utils/health-check/", None, 0),
        ("GET", "/api/v1/docs", None, 0),
        ("GET", "/api/v1/openapi.json", None, 0),
    ]
    answers = {"/api/v1/model/challenger": 404, "/api/v1/outcomes": 200 if ledger else 503}
    return [(*call, answers.get(call[1], 200)) for call in calls]


def ledger_rows(location: str | Path, table: str = "decisions") -> list[dict[str, Any]]:
    """The rows of one table of the decision ledger at `location` (a directory or s3://),
    oldest file first, each with its `date` partition."""
    from ledger.files import open_files, table_dataset

    rows: list[dict[str, Any]] = (
        table_dataset(open_files(str(location)), table).to_table().to_pylist()
    )
    when = "time" if table != "outcomes" else "received_at"
    return sorted(rows, key=lambda row: (row[when], row.get("position", 0)))


def real_sample_csv(path: Path, every: int = 6) -> Path:
    """Every `every`-th row of the bundled real data (in Time order, frauds included as they
    come), written to `path` as a CSV: a tiny real data set of its own, with no strata file."""
    import pandas as pd

    frame = pd.read_csv(PROJECT_ROOT / "data" / "creditcard_real_subset.csv.gz")
    frame.iloc[::every].to_csv(path, index=False)
    return path
