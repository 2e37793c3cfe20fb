"""Decision rules: when a scored transaction is flagged for review.

Chosen at training (the artifact's `decision`) and changeable at serving (FraudModel's
`user_config`), one of:

- fixed_threshold: flag when fraud_probability >= threshold.
- alert_budget: flag the riskiest transactions up to a review team's capacity, as alerts per
  10,000 transactions or as a false-positive rate. The budget becomes a threshold on
  fraud_probability through the artifact's alert curve (`alert_curve.json`: held-out rows at
  production weights, how many alerts each threshold raises), so it can be changed at serving.
- expected_cost: flag when fraud_probability * Amount >= review_cost, i.e. when the expected loss
  of letting the transaction through is at least the cost of reviewing it (Bayes minimum risk
  with example-dependent costs: a missed fraud costs its Amount, a review costs review_cost).

The answer's `threshold` is the rule's cut: a threshold on fraud_probability for the first two,
the review cost (on fraud_probability * Amount) for expected_cost.

Only numpy and pydantic: the serving side imports this.
"""

import json
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from fraud_model.features import FEATURE_NAMES

RuleName = Literal["fixed_threshold", "alert_budget", "expected_cost"]
RULE_NAMES: tuple[RuleName, ...] = ("fixed_threshold", "alert_budget", "expected_cost")
ALERT_CURVE_FILE = "alert_curve.json"
PER_10K = 10_000
AMOUNT = FEATURE_NAMES.index("Amount")


class DecisionRule(BaseModel):
    """A rule as it decides: its name and the numbers it needs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: RuleName
    threshold: float | None = Field(
        None,
        ge=0,
        le=1,
        description="fixed_threshold: the threshold; alert_budget: the one its budget gives.",
    )
    alerts_per_10k: float | None = Field(
        None, gt=0, le=PER_10K, description="alert_budget: alerts per 10,000 transactions."
    )
    max_false_positive_rate: float | None = Field(
        None, gt=0, lt=1, description="alert_budget: share of legitimate transactions flagged."
    )
    review_cost: float | None = Field(
        None, gt=0, description="expected_cost: cost of one review, in the unit of Amount."
    )

    @model_validator(mode="after")
    def numbers_of_the_rule(self) -> "DecisionRule":
        if self.rule == "expected_cost":
            if self.review_cost is None:
                raise ValueError("decision rule expected_cost needs review_cost")
        elif self.threshold is None:
            raise ValueError(f"decision rule {self.rule} needs its threshold")
        budgets = (self.alerts_per_10k, self.max_false_positive_rate)
        if self.rule == "alert_budget" and sum(b is not None for b in budgets) != 1:
            raise ValueError("decision rule alert_budget needs alerts_per_10k or "
                             "max_false_positive_rate (one of them)")  # fmt: skip
        return self

    @property
    def cut(self) -> float:
        """The answer's `threshold`: on fraud_probability, or on p * Amount for expected_cost."""
        value = self.review_cost if self.rule == "expected_cost" else self.threshold
        if value is None:  # excluded by the validator
            raise ValueError(f"decision rule {self.rule} is incomplete")
        return value

    def describe(self) -> str:
        if self.rule == "expected_cost":
            return f"expected_cost: fraud_probability * Amount >= {self.review_cost:g}"
        budget = ""
        if self.alerts_per_10k is not None:
            budget = f" ({self.alerts_per_10k:g} alerts per 10,000 transactions)"
        elif self.max_false_positive_rate is not None:
            budget = f" (false-positive rate {self.max_false_positive_rate:g})"
        return f"{self.rule}: fraud_probability >= {self.threshold:.6g}{budget}"


def decide(probabilities: np.ndarray, features: np.ndarray, rule: DecisionRule) -> np.ndarray:
    """Which rows the rule flags; `features` in contract order (the Amount is read from them)."""
    if rule.rule == "expected_cost":
        amounts = np.asarray(features, dtype=np.float64)[:, AMOUNT]
        flagged: np.ndarray = probabilities * amounts >= rule.cut
        return flagged
    flagged = probabilities >= rule.cut
    return flagged


class AlertCurve(BaseModel):
    """Alerts raised by each threshold on held-out rows at production weights: thresholds
    strictly decreasing, the two rates non-decreasing along them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(description="The rows it was measured on.")
    thresholds: list[float]
    alerts_per_10k: list[float]
    false_positive_rate: list[float]

    @model_validator(mode="after")
    def ordered(self) -> "AlertCurve":
        t = np.asarray(self.thresholds)
        lengths = {len(self.thresholds), len(self.alerts_per_10k), len(self.false_positive_rate)}
        if len(lengths) != 1 or not t.size:
            raise ValueError("an alert curve needs thresholds and both rates, of one length")
        rates = (np.asarray(self.alerts_per_10k), np.asarray(self.false_positive_rate))
        if np.any(np.diff(t) >= 0) or any(np.any(np.diff(rate) < 0) for rate in rates):
            raise ValueError("alert curve out of order")
        return self

    def threshold_for(
        self, alerts_per_10k: float | None = None, max_false_positive_rate: float | None = None
    ) -> float:
        """The lowest threshold whose alerts stay within the budget (the highest one if none
        does)."""
        if alerts_per_10k is not None:
            rates, budget = np.asarray(self.alerts_per_10k), alerts_per_10k
        elif max_false_positive_rate is not None:
            rates, budget = np.asarray(self.false_positive_rate), max_false_positive_rate
        else:
            raise ValueError("an alert budget needs alerts_per_10k or max_false_positive_rate")
        within = int(np.searchsorted(rates, budget, side="right")) - 1
        return self.thresholds[max(within, 0)]


def alert_curve(
    probabilities: np.ndarray, labels: np.ndarray, weights: np.ndarray, source: str
) -> AlertCurve:
    """The curve of held-out rows (`weights`: production weights), from "flag nothing" (a
    threshold just above the highest probability) down to the lowest probability."""
    order = np.argsort(-probabilities, kind="stable")
    scores, weight, fraud = probabilities[order], weights[order], labels[order] == 1
    last_of_run = np.r_[scores[1:] != scores[:-1], True]
    flagged = np.cumsum(weight)[last_of_run] / weight.sum()
    false_alarms = np.cumsum(np.where(fraud, 0.0, weight))[last_of_run] / weight[~fraud].sum()
    thresholds, alerts, rates = (
        scores[last_of_run].tolist(),
        (flagged * PER_10K).tolist(),
        (false_alarms.tolist()),
    )
    if scores[0] < 1.0:  # a threshold that flags nothing, still a probability
        thresholds = [float(np.nextafter(scores[0], np.inf)), *thresholds]
        alerts, rates = [0.0, *alerts], [0.0, *rates]
    return AlertCurve(
        source=source, thresholds=thresholds, alerts_per_10k=alerts, false_positive_rate=rates
    )


def read_alert_curve(path: Path) -> AlertCurve:
    """The artifact's alert curve (plain JSON, hash-checked with the artifact)."""
    return AlertCurve.model_validate(json.loads(path.read_bytes()))


def serving_rule(
    shipped: DecisionRule,
    curve: AlertCurve | None,
    fixed_threshold: float,
    *,
    rule: RuleName | None = None,
    threshold: float | None = None,
    alerts_per_10k: float | None = None,
    max_false_positive_rate: float | None = None,
    review_cost: float | None = None,
) -> DecisionRule:
    """The rule a replica serves: the artifact's own (`shipped`), or the one its config names.

    `threshold` alone means fixed_threshold, as it always has; fixed_threshold without one takes
    the artifact's `fixed_threshold`. Another rule named without its numbers takes the
    artifact's where the artifact ships that rule. Raises ValueError, naming what is
    missing, when the config and the artifact cannot make a rule.
    """
    if threshold is not None and rule not in (None, "fixed_threshold"):
        raise ValueError(f"threshold applies to fixed_threshold, not to decision_rule {rule}")
    if rule is None:
        if any(v is not None for v in (alerts_per_10k, max_false_positive_rate, review_cost)):
            raise ValueError("alerts_per_10k, max_false_positive_rate and review_cost need "
                             "decision_rule to say which rule they are for")  # fmt: skip
        if threshold is None:
            return shipped
        rule = "fixed_threshold"
    same = shipped.rule == rule
    if rule == "fixed_threshold":
        chosen = threshold if threshold is not None else fixed_threshold
        return DecisionRule(rule=rule, threshold=chosen)
    if rule == "expected_cost":
        cost = review_cost if review_cost is not None else (shipped.review_cost if same else None)
        if cost is None:
            raise ValueError("decision_rule expected_cost needs review_cost (this artifact ships "
                             f"{shipped.rule})")  # fmt: skip
        return DecisionRule(rule=rule, review_cost=cost)
    if alerts_per_10k is None and max_false_positive_rate is None and same:
        alerts_per_10k, max_false_positive_rate = (
            shipped.alerts_per_10k,
            shipped.max_false_positive_rate,
        )
    if curve is None:
        raise ValueError("decision_rule alert_budget needs the artifact's alert curve; this "
                         "artifact has none (retrain it)")  # fmt: skip
    if (alerts_per_10k is None) == (max_false_positive_rate is None):
        raise ValueError("decision_rule alert_budget needs alerts_per_10k or "
                         "max_false_positive_rate (one of them)")  # fmt: skip
    return DecisionRule(
        rule="alert_budget",
        threshold=curve.threshold_for(alerts_per_10k, max_false_positive_rate),
        alerts_per_10k=alerts_per_10k,
        max_false_positive_rate=max_false_positive_rate,
    )
