"""Held-out PR-AUC of the training defaults vs the usual recipe of the plain FastAPI fraud app.

Same real rows, same stratified 80/20 split (seed 42); several forest seeds each, because one
forest's PR-AUC moves by ~0.01 from seed to seed. The seed recipe trains sklearn's
RandomForestClassifier(n_estimators=100, max_depth=12) on the whole 80 %; ours trains with the
CLI defaults on 64 % (the other 16 % choose the threshold), exactly as `python -m training` does.

    uv run python -m benchmarks.compare_seed_recipe [--data data/creditcard_real_subset.csv.gz]
"""

import argparse
import logging
import statistics
import sys

from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import average_precision_score
from sklearn.model_selection import train_test_split

from training.data import load_transactions
from training.forest import train_forest_in_threads
from training.options import ForestParams

logger = logging.getLogger("benchmarks.compare_seed_recipe")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/creditcard_real_subset.csv.gz")
    parser.add_argument("--seeds", type=int, default=5, help="forest seeds per recipe")
    parser.add_argument("--split-seed", type=int, default=42)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")

    data = load_transactions(args.data)
    x_train, x_test, y_train, y_test = train_test_split(
        data.features,
        data.labels,
        test_size=0.2,
        stratify=data.labels,
        random_state=args.split_seed,
    )
    x_fit, _, y_fit, _ = train_test_split(
        x_train, y_train, test_size=0.2, stratify=y_train, random_state=args.split_seed
    )
    seed_scores, our_scores = [], []
    for seed in range(args.seeds):
        seed_model = RandomForestClassifier(
            n_estimators=100, max_depth=12, random_state=seed, n_jobs=-1
        )
        seed_model.fit(x_train, y_train)
        seed_scores.append(average_precision_score(y_test, seed_model.predict_proba(x_test)[:, 1]))
        ours = train_forest_in_threads(x_fit, y_fit, ForestParams(), seed=seed)
        our_scores.append(average_precision_score(y_test, ours.predict_proba(x_test)[:, 1]))
        logger.info(
            "seed %d: seed recipe PR-AUC %.4f | ours %.4f", seed, seed_scores[-1], our_scores[-1]
        )
    for name, scores in (
        ("seed recipe (100 trees, max_depth=12, 80 %)", seed_scores),
        ("ours (CLI defaults, 64 %)", our_scores),
    ):
        logger.info(
            "%-45s median %.4f  mean %.4f  min %.4f  max %.4f",
            name,
            statistics.median(scores),
            statistics.mean(scores),
            min(scores),
            max(scores),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
