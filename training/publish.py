"""`python -m training.publish ARTIFACT DESTINATION`: publish a model version, immutably.

Writes the verified artifact directory ARTIFACT under DESTINATION/<model_version>/ (an
`s3://bucket/prefix` or a local directory) and prints the two lines to pin in FraudModel's
`user_config`. An existing version is never replaced.
"""

import argparse
import logging
import sys
from pathlib import Path

from fraud_model.artifact import ArtifactError
from fraud_model.store import PublishedArtifact, publish_artifact

logger = logging.getLogger("training.publish")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.publish", description=__doc__.splitlines()[0]
    )
    parser.add_argument("artifact", type=Path, help="artifact directory written by training")
    parser.add_argument(
        "destination", help="where versions live: s3://bucket/prefix or a local directory"
    )
    return parser


def pin_lines(published: PublishedArtifact) -> str:
    """The user_config lines that serve exactly this version."""
    return f"artifact_uri: {published.uri}\nmetadata_sha256: {published.metadata_sha256}\n"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        published = publish_artifact(args.artifact, args.destination)
    except ArtifactError as error:
        logger.error("Not published: %s", error)
        return 1
    # The pin goes to stdout alone, so a script can capture it; the log goes to stderr.
    sys.stdout.write(pin_lines(published))
    return 0


if __name__ == "__main__":
    sys.exit(main())
