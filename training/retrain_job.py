"""`python -m training.retrain_job --data s3://... --models s3://...`: the retraining RayJob's
entrypoint (k8s/rayjob-retrain.yaml).

Inside a Ray job, on the cluster it runs in ($RAY_ADDRESS, which Ray's job supervisor sets): the
CSV (plain or .gz) is downloaded from S3, with its `<name>.strata.json` sampling design when one
lies beside it; `python -m training` trains on it, the forest's trees as Ray tasks spread over the
workers; the artifact is published as an immutable version under the models prefix, as
`python -m training.publish` does. Then stdout gets the two pin lines and the `Challenger` entry
to paste into a Serve config's deployments (docs/CHALLENGER.md).

Every option it does not know is passed to `python -m training` (`--n-estimators 300`, ...),
but for those this module sets itself.
"""

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

from fraud_model.ray_env import use_this_venv_for_ray_workers

logger = logging.getLogger("training.retrain_job")

# Set by this module, from --data, --models and the job's Ray cluster: not passed through.
OWN_TRAINING_OPTIONS = ("--data", "--synthetic", "--strata", "--output", "--overwrite",
                        "--publish", "--ray-address")  # fmt: skip


class RetrainError(ValueError):
    """The job cannot run as asked; the message says what to fix."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.retrain_job",
        description=__doc__.splitlines()[0],
        epilog="Other options go to `python -m training` (see its --help).",
    )
    parser.add_argument(
        "--data",
        required=True,
        metavar="S3_URI",
        help="s3://bucket/key of creditcard.csv-shaped data (plain or .gz); a "
        "<name>.strata.json beside it is its sampling design",
    )
    parser.add_argument(
        "--models",
        required=True,
        metavar="S3_URI",
        help="s3://bucket/prefix the version is published under (never replaced)",
    )
    return parser


def s3_object(uri: str, what: str) -> tuple[str, str]:
    """(bucket, key) of an `s3://bucket/key` URI, or RetrainError naming `what`."""
    from fraud_model.store import InvalidArtifactUriError, S3Location, parse_location

    try:
        location = parse_location(uri) if uri.startswith("s3://") else None
    except InvalidArtifactUriError as error:
        raise RetrainError(f"{what}: {error}") from error
    if not isinstance(location, S3Location) or not location.prefix:
        raise RetrainError(f"{what} must be an s3://bucket/key URI, got {uri!r}")
    return location.bucket, location.prefix


def check_models_prefix(uri: str) -> None:
    """Refuse a models destination that is not a well-formed `s3://bucket/prefix` before any
    training is spent on it."""
    s3_object(uri, "--models")


def download_data(uri: str, directory: Path) -> Path:
    """The data object (and its strata file, if one is beside it) in `directory`, under their
    own names: the name says whether it is gzipped, and the strata file is found beside it as
    training.data looks for one."""
    from botocore.exceptions import BotoCoreError, ClientError

    from fraud_model.store import s3_client
    from training.weights import strata_file_beside

    bucket, key = s3_object(uri, "--data")
    client = s3_client()
    local = directory / key.rsplit("/", 1)[-1]
    strata = strata_file_beside(local)
    strata_key = key[: len(key) - len(local.name)] + strata.name
    try:
        client.download_file(bucket, key, str(local))
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in ("404", "NoSuchKey", "NoSuchBucket"):
            raise RetrainError(f"--data {uri}: no such object") from error
        raise RetrainError(f"--data {uri}: cannot be read: {code or error}") from error
    except BotoCoreError as error:
        raise RetrainError(f"--data {uri}: cannot be read: {error}") from error
    try:
        client.download_file(bucket, strata_key, str(strata))
        logger.info("Sampling design s3://%s/%s found beside the data", bucket, strata_key)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code", "") not in ("404", "NoSuchKey"):
            raise RetrainError(f"s3://{bucket}/{strata_key}: cannot be read: {error}") from error
        logger.info(
            "No s3://%s/%s: the rows weigh 1 unless --weight-column says", bucket, strata_key
        )
    return local


def challenger_entry(uri: str, metadata_sha256: str) -> str:
    """The `Challenger` item of a Serve application's `deployments:` list, for this version."""
    from serve_app.config import CHALLENGER

    return (
        f"  - name: {CHALLENGER}\n"
        "    user_config:\n"
        f"      artifact_uri: {uri}\n"
        f"      metadata_sha256: {metadata_sha256}\n"
    )


def main(argv: list[str] | None = None) -> int:
    from training.cli import build_parser as training_parser

    args, training_args = build_parser().parse_known_args(argv)
    # Training's --log-level, for this module's lines too (its basicConfig comes after this one).
    level = training_parser().get_default("log_level")
    if "--log-level" in training_args[:-1]:
        level = training_args[training_args.index("--log-level") + 1]
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stdout,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    own = [a for a in training_args if a.split("=", 1)[0] in OWN_TRAINING_OPTIONS]
    try:
        if own:
            raise RetrainError(f"{', '.join(own)}: set by this job, not to be passed")
        if not os.environ.get("RAY_ADDRESS"):
            raise RetrainError(
                "RAY_ADDRESS is not set: this is a Ray job's entrypoint (submit it, or run "
                "`python -m training` for a run without a cluster)"
            )
        check_models_prefix(args.models)
        with tempfile.TemporaryDirectory(prefix="retrain-") as work:
            data = download_data(args.data, Path(work))
            return train_and_publish(data, Path(work) / "artifact", args.models, training_args)
    except RetrainError as error:
        logger.error("%s", error)
        return 2


def train_and_publish(data: Path, output: Path, models: str, training_args: list[str]) -> int:
    from training.cli import main as train

    # $RAY_ADDRESS: the trees are Ray tasks on this job's cluster.
    trained = train([*training_args, "--data", str(data), "--output", str(output), "--no-progress"])
    return trained if trained != 0 else publish_and_print(output, models)


def publish_and_print(artifact: Path, models: str) -> int:
    """Publish `artifact` under `models`, then print its pin and its Challenger entry; 1 if it
    cannot be published (a version is never replaced)."""
    from fraud_model.artifact import ArtifactError
    from fraud_model.store import publish_artifact
    from training.publish import pin_lines

    try:
        published = publish_artifact(artifact, models)
    except ArtifactError as error:
        logger.error("Trained, but not published: %s", error)
        return 1
    sys.stdout.write(
        f"Pin it in FraudModel's user_config:\n{pin_lines(published)}"
        "or try it as the challenger, in the Serve config's deployments:\n"
        f"{challenger_entry(published.uri, published.metadata_sha256)}"
    )
    return 0


if __name__ == "__main__":
    use_this_venv_for_ray_workers()  # before anything imports Ray
    sys.exit(main())
