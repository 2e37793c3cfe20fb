"""`python -m training.compare A B`: two trained artifacts judged on the same out-of-time rows.

Both models must have been grown on the temporal split of the same data (checked against their
metadata: the data's sha256 and the split's settings), so that the test rows, the latest `Time`s,
were seen by neither. The rows are rebuilt as training built them (training.pipeline.make_split),
scored through each artifact as serving scores them (fraud_model.artifact: the ONNX engine, then
the calibration), decided by each artifact's shipped rule, and the difference B - A of the
headline metrics is measured with a paired bootstrap (training.paired_bootstrap) at production
weights (training.weights).
"""

import argparse
import json
import logging
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger("training.compare")


@dataclass(frozen=True)
class CompareOptions:
    """The comparison's settings and their defaults (the CLI reads them from here)."""

    data: Path = Path("data/creditcard_real_subset.csv.gz")
    resamples: int = 2000
    seed: int = 0
    level: float = 0.95


# The training options both artifacts must share for their test rows and metrics to be the same.
SHARED_OPTIONS = (
    "split",
    "test_size",
    "validation_size",
    "production_fraud_rate",
    "review_cost",
    "alerts_per_10k",
)


class ComparisonError(ValueError):
    """The two artifacts cannot be compared as asked; the message says why."""


def shared_options(a: Any, b: Any) -> dict[str, Any]:
    """The options both artifacts were trained with (ArtifactMetadata each), or why not."""
    found = []
    for name, metadata in (("A", a), ("B", b)):
        options = metadata.training_params.get("options", {})
        missing = [key for key in SHARED_OPTIONS if key not in options]
        if missing:
            raise ComparisonError(f"{name}'s metadata records no training option {missing}")
        found.append({key: options[key] for key in SHARED_OPTIONS})
    if found[0]["split"] != "temporal" or found[1]["split"] != "temporal":
        raise ComparisonError(
            f"A was grown on the {found[0]['split']} split, B on the {found[1]['split']} one: "
            "both must be grown on the temporal split (`python -m training --split temporal`), "
            "or the out-of-time test rows were among a model's training rows"
        )
    differing = [key for key in SHARED_OPTIONS if found[0][key] != found[1][key]]
    if differing:
        detail = ", ".join(f"{key} {found[0][key]} against {found[1][key]}" for key in differing)
        raise ComparisonError(f"A and B were trained with different settings: {detail}")
    if (a.data.sha256, a.data.sampling) != (b.data.sha256, b.data.sampling):
        raise ComparisonError(
            f"A was trained on {a.data.source} (sha256 {a.data.sha256}, weights: "
            f"{a.data.sampling}), B on {b.data.source} (sha256 {b.data.sha256}, weights: "
            f"{b.data.sampling})"
        )
    return found[0]


def compare_artifacts(a_path: Path, b_path: Path, options: CompareOptions) -> dict[str, Any]:
    """The comparison as a JSON-ready dict: the rows, each model, every metric's difference."""
    import numpy as np

    from fraud_model.artifact import load_artifact
    from fraud_model.decision import AMOUNT, decide
    from training.data import load_transactions
    from training.options import TrainingOptions
    from training.paired_bootstrap import ModelScores, paired_bootstrap, verdict
    from training.pipeline import make_split
    from training.split import duplicate_groups
    from training.weights import production_weights

    a, b = load_artifact(a_path), load_artifact(b_path)
    settings = shared_options(a.metadata, b.metadata)
    dataset = load_transactions(options.data)
    if dataset.fingerprint.sha256 != a.metadata.data.sha256:
        raise ComparisonError(
            f"{options.data} (sha256 {dataset.fingerprint.sha256}) is not the data A and B were "
            f"trained on ({a.metadata.data.source}, sha256 {a.metadata.data.sha256})"
        )
    if dataset.fingerprint.sampling != a.metadata.data.sampling:
        raise ComparisonError(
            f"A and B were trained with the sampling weights of {a.metadata.data.sampling}; "
            f"{options.data} gives {dataset.fingerprint.sampling}"
        )
    split_options = TrainingOptions(
        split="temporal",
        test_size=settings["test_size"],
        validation_size=settings["validation_size"],
    )
    split = make_split(dataset, "temporal", split_options, duplicate_groups(dataset.features))
    test = split.test
    labels = dataset.labels[test].astype(np.int64)
    features = dataset.features[test]
    weights = production_weights(
        dataset.labels, settings["production_fraud_rate"], dataset.sampling.weights
    )[test]
    scores_a, scores_b = (
        ModelScores(p, decide(p, features, artifact.metadata.decision_rule))
        for artifact, p in ((x, x.fraud_probability(features)) for x in (a, b))
    )
    differences = paired_bootstrap(
        labels,
        np.asarray(features[:, AMOUNT], dtype=np.float64),
        weights,
        scores_a,
        scores_b,
        review_cost=settings["review_cost"],
        alerts_per_10k=settings["alerts_per_10k"],
        resamples=options.resamples,
        seed=options.seed,
        level=options.level,
    )
    return {
        "rows": split.description,
        "test_rows": len(test),
        "test_frauds": int(labels.sum()),
        "weights": f"production weights: {dataset.sampling.description}, legitimate rows scaled "
        f"to the production fraud rate {settings['production_fraud_rate']:g}",
        "settings": settings,
        "bootstrap": asdict(options) | {"data": str(options.data)},
        "models": {
            name: {
                "path": str(artifact.path),
                "model_version": artifact.metadata.model_version,
                "model_family": artifact.metadata.model_family,
                "decision_rule": artifact.metadata.decision_rule.describe(),
            }
            for name, artifact in zip("AB", (a, b), strict=True)
        },
        "differences": [asdict(d) | {"winner": d.winner} for d in differences],
        "verdict": verdict(differences),
    }


def table(result: dict[str, Any]) -> list[str]:
    """The comparison as Markdown lines."""
    level = result["bootstrap"]["level"]
    lines = [
        f"A: {result['models']['A']['model_family']} {result['models']['A']['model_version']} "
        f"({result['models']['A']['decision_rule']})",
        f"B: {result['models']['B']['model_family']} {result['models']['B']['model_version']} "
        f"({result['models']['B']['decision_rule']})",
        f"Rows: {result['test_rows']} test rows, {result['test_frauds']} frauds; {result['rows']}",
        "",
        f"| metric | A | B | B - A | {level:.0%} interval | better |",
        "|---|---|---|---|---|---|",
    ]
    for d in result["differences"]:
        lines.append(
            f"| {d['metric']} ({d['better']} is better) | {d['a']:.6g} | {d['b']:.6g} | "
            f"{d['difference']:+.6g} | [{d['low']:+.6g}, {d['high']:+.6g}] | {d['winner']} |"
        )
    lines += ["", f"Verdict: {result['verdict']}"]
    return lines


def build_parser() -> argparse.ArgumentParser:
    defaults = CompareOptions()
    parser = argparse.ArgumentParser(
        prog="python -m training.compare",
        description="Compare two artifacts grown on the temporal split of the same data: a "
        "paired bootstrap of B - A on the out-of-time test rows, at production weights.",
    )
    parser.add_argument("a", type=Path, help="artifact directory of model A (the champion)")
    parser.add_argument("b", type=Path, help="artifact directory of model B (the challenger)")
    parser.add_argument(
        "--data",
        type=Path,
        default=defaults.data,
        help="the data both were trained on (checked against their sha256) (default: %(default)s)",
    )
    parser.add_argument(
        "--resamples", type=int, default=defaults.resamples, help="(default: %(default)s)"
    )
    parser.add_argument(
        "--seed", type=int, default=defaults.seed, help="the resamples' seed (default: %(default)s)"
    )
    parser.add_argument(
        "--level", type=float, default=defaults.level, help="interval level (default: %(default)s)"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the result here")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
    from fraud_model.artifact import ArtifactError
    from training.data import DataValidationError

    options = CompareOptions(
        data=args.data, resamples=args.resamples, seed=args.seed, level=args.level
    )
    try:
        result = compare_artifacts(args.a, args.b, options)
    except (ArtifactError, ComparisonError, DataValidationError) as error:
        logger.error("Cannot compare: %s", error)
        return 2
    for line in table(result):
        logger.info(line)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
