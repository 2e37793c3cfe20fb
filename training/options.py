"""Training's parameters and their defaults, in one place: the CLI, the pipeline and the
benchmarks all read them from here. Light on purpose: `python -m training --help` imports only
this."""

from dataclasses import asdict, dataclass
from typing import Any, Literal

from fraud_model.families import ModelFamily

PRODUCTION_FRAUD_RATE = 0.00172  # 492 / 284,807 in the full public data set
# The cost of reviewing one flagged transaction, in the unit of Amount: an assumption of this
# project, not a measured figure (docs/MODEL.md says how to set yours).
DEFAULT_REVIEW_COST = 5.0
# Room for every fraud and as many false alarms again: twice the production fraud rate.
DEFAULT_ALERTS_PER_10K = 2 * PRODUCTION_FRAUD_RATE * 10_000
ThresholdStrategy = Literal["best_f1", "target_precision", "min_cost"]
SplitKind = Literal["random", "temporal"]
RuleChoice = Literal["auto", "fixed_threshold", "alert_budget", "expected_cost"]

ClassWeight = Literal["balanced", "balanced_subsample"] | None


@dataclass(frozen=True)
class ForestParams:
    """The subset of RandomForestClassifier's parameters that this trainer forwards, same names."""

    n_estimators: int = 100
    criterion: str = "gini"
    max_depth: int | None = None
    min_samples_split: int = 2
    # Leaves of a few rows and class weights per bootstrap sample: the forest's recipe for a
    # 0.17 % fraud rate (benchmarks/compare_seed_recipe.py compares it with sklearn's defaults).
    min_samples_leaf: int = 3
    max_features: str | float | int | None = "sqrt"
    max_leaf_nodes: int | None = None
    bootstrap: bool = True
    max_samples: float | int | None = None
    class_weight: ClassWeight = "balanced_subsample"
    ccp_alpha: float = 0.0

    def sklearn_kwargs(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class BoostingParams:
    """The subset of HistGradientBoostingClassifier's parameters that this trainer forwards, same
    names. Early stopping is always off: scikit-learn would hold out rows of its own, at random,
    with no regard for time or duplicate groups (training.split); `max_iter` trees are grown."""

    learning_rate: float = 0.05
    max_iter: int = 300
    max_leaf_nodes: int | None = 15
    max_depth: int | None = None
    # Leaves of at least 20 rows: a 0.17 % fraud rate gives few frauds per leaf, and the
    # calibration (training.calibrate) moves the probabilities to the production rate anyway.
    min_samples_leaf: int = 20
    l2_regularization: float = 1.0
    # A share of the features tried at each split: the seed then matters, as the forest's does.
    max_features: float = 0.5
    class_weight: Literal["balanced"] | None = None

    def sklearn_kwargs(self) -> dict[str, Any]:
        return asdict(self) | {"early_stopping": False}


@dataclass(frozen=True)
class TrainingOptions:
    model_family: ModelFamily = "random_forest"  # fraud_model.families
    seed: int = 42  # the model's (a forest's: every tree's seed is spawned from it)
    split_seed: int = 42  # the random split's, apart from the forest's
    split: SplitKind = "random"  # the split the served forest is grown and measured on
    compare_split: SplitKind | None = None  # another split, measured beside it in the report
    test_size: float = 0.2
    validation_size: float = 0.2  # share of the training part held out to set up the rules
    production_fraud_rate: float = PRODUCTION_FRAUD_RATE
    threshold_strategy: ThresholdStrategy = "best_f1"  # the fixed_threshold rule's threshold
    target_precision: float | None = None
    review_cost: float = DEFAULT_REVIEW_COST  # per flagged transaction: min_cost, expected_cost
    decision_rule: RuleChoice = "auto"  # auto: the cheapest within the alert budget
    alerts_per_10k: float = DEFAULT_ALERTS_PER_10K  # the alert budget
    stability_runs: int = 4  # more forest seeds (and split seeds) for the report's spreads
    num_tasks: int | None = None
