"""Writing model artifacts (the reading side is `fraud_model.artifact`).

Writing is atomic: the artifact is built in a hidden sibling directory, fsynced, then renamed
into place, so a reader never sees a half-written one. The ONNX export must score the parity
probe like the scikit-learn model it came from (a forest or boosted trees, training.families), or
nothing is written.
"""

import importlib.metadata
import logging
import os
import platform
import shutil
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from fraud_model.artifact import (
    FORMAT_VERSION_OF_FAMILY,
    METADATA_FILE,
    ArtifactParityError,
    FeatureMismatchError,
    sha256_file,
)
from fraud_model.decision import ALERT_CURVE_FILE, AlertCurve, DecisionRule
from fraud_model.engines import PARITY_TOLERANCE, OnnxEngine
from fraud_model.explain import TREES_FILE, save_trees
from fraud_model.features import FEATURE_DTYPE, FEATURE_NAMES
from fraud_model.metadata import (
    ArtifactMetadata,
    Calibration,
    DataFingerprint,
    Parity,
    ScoreBins,
)
from training.families import family_of, sklearn_raw_scores

logger = logging.getLogger(__name__)

# model.joblib is the scikit-learn object, for notebooks; serving reads only model.onnx.
MODEL_FILES = {"onnx": "model.onnx", "sklearn": "model.joblib"}
PROBE_FILE = "parity_probe.npz"


def library_versions() -> dict[str, str]:
    import onnxruntime
    import sklearn

    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "joblib": joblib.__version__,
        "onnxruntime": onnxruntime.__version__,
        # From the installed package's metadata: importing Ray takes seconds, and a run in threads
        # never needs it.
        "ray": importlib.metadata.version("ray"),
    }


def save_artifact(
    output_dir: str | Path,
    model: Any,
    onnx_model: bytes,
    probe: np.ndarray,
    *,
    threshold: float,
    threshold_strategy: str,
    calibration: Calibration,
    training_params: dict[str, Any],
    data: DataFingerprint,
    metrics: Mapping[str, object],
    score_bins: ScoreBins,
    extra_files: dict[str, bytes] | None = None,
    report_file: str | None = None,
    decision: DecisionRule | None = None,
    alert_curve: AlertCurve | None = None,
    overwrite: bool = False,
) -> ArtifactMetadata:
    """Write the model (sklearn, ONNX and its trees as plain arrays), the parity probe, any
    extra files (the training report), the alert curve and the metadata, atomically. The format
    version is the model family's (fraud_model.artifact.FORMAT_VERSION_OF_FAMILY).

    `score_bins`: the drift reference (training.pipeline.live_score_bins). `decision`: the rule
    the model ships with (None: fixed_threshold at `threshold`).
    Raises ArtifactParityError, leaving nothing behind, if the engines disagree.
    """
    final = Path(output_dir)
    if final.exists() and not overwrite:
        raise FileExistsError(f"{final} already exists; artifacts are immutable (pass overwrite)")
    n_features = getattr(model, "n_features_in_", None)
    if n_features != len(FEATURE_NAMES):
        raise FeatureMismatchError(
            f"The model expects {n_features} features; the contract has {len(FEATURE_NAMES)}"
        )
    family = family_of(model)
    probe = np.asarray(probe, dtype=FEATURE_DTYPE)
    sklearn_scores = sklearn_raw_scores(model, probe)
    max_diff = _max_abs_diff(OnnxEngine(onnx_model).raw_fraud_scores(probe), sklearn_scores)
    if max_diff > PARITY_TOLERANCE:
        raise ArtifactParityError(
            f"ONNX export differs from sklearn by {max_diff:.2e} on {len(probe)} probe rows "
            f"(tolerance {PARITY_TOLERANCE:.0e}); not writing {final}"
        )

    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.parent / f".{final.name}.partial-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        (staging / MODEL_FILES["onnx"]).write_bytes(onnx_model)
        joblib.dump(model, staging / MODEL_FILES["sklearn"], compress=3)
        np.savez(staging / PROBE_FILE, features=probe, sklearn_scores=sklearn_scores)
        save_trees(model, staging / TREES_FILE, family)
        for name, content in (extra_files or {}).items():
            (staging / name).write_bytes(content)
        if alert_curve is not None:
            (staging / ALERT_CURVE_FILE).write_text(alert_curve.model_dump_json() + "\n")
        files = {file.name: sha256_file(file) for file in sorted(staging.iterdir())}
        file_sizes = {file.name: file.stat().st_size for file in sorted(staging.iterdir())}
        created_at = datetime.now(UTC).replace(microsecond=0)
        onnx_sha = files[MODEL_FILES["onnx"]]
        metadata = ArtifactMetadata(
            format_version=FORMAT_VERSION_OF_FAMILY[family],
            model_family=family,
            model_version=f"{created_at:%Y%m%dT%H%M%SZ}-{onnx_sha[:8]}",
            created_at=created_at,
            engines=MODEL_FILES,
            parity=Parity(
                probe_file=PROBE_FILE,
                rows=len(probe),
                max_abs_diff=max_diff,
                tolerance=PARITY_TOLERANCE,
            ),
            explainer_file=TREES_FILE,
            score_bins=score_bins,
            report_file=report_file,
            files=files,
            file_sizes=file_sizes,
            features=list(FEATURE_NAMES),
            threshold=threshold,
            threshold_strategy=threshold_strategy,
            decision=decision,
            alert_curve_file=ALERT_CURVE_FILE if alert_curve is not None else None,
            calibration=calibration,
            library_versions=library_versions(),
            training_params=training_params,
            data=data,
            metrics=dict(metrics),
        )
        # A forest's metadata is format 4's, which has no model_family (and means a forest).
        unsaid = {"model_family"} if family == "random_forest" else None
        (staging / METADATA_FILE).write_text(
            metadata.model_dump_json(indent=2, exclude=unsaid) + "\n"
        )
        for file in staging.iterdir():
            _fsync(file)
        _replace_dir(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("Wrote artifact %s (model_version %s)", final, metadata.model_version)
    return metadata


def _max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - b))) if len(a) else 0.0


def _fsync(file: Path) -> None:
    fd = os.open(file, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace_dir(staging: Path, final: Path) -> None:
    """Move `staging` to `final`; an existing `final` is swapped out, then deleted."""
    if not final.exists():
        staging.rename(final)
        return
    retired = final.parent / f".{final.name}.retired-{uuid.uuid4().hex[:8]}"
    final.rename(retired)
    staging.rename(final)
    shutil.rmtree(retired)
