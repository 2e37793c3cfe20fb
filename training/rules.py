"""The decision rules fraud teams use, set up on validation rows and compared on test rows.

Each rule (fraud_model.decision) is set up on the validation rows: the fixed threshold by its
strategy, the alert budget's threshold from the validation rows' alert curve, the expected-cost
rule needs nothing but the review cost. The rule that ships is the cheapest on the validation rows
among those within the alert budget. On any rows, a rule's outcome is its cost per live
transaction, alerts per 10,000 transactions, frauds caught and the amount they carried, each with
a 95 % interval:

- frauds caught (recall) and the false-positive rate: exact (training.intervals), the alert rate
  derived from both;
- cost per transaction = pi * mean over frauds of (Amount if missed, review cost if flagged)
  + (1 - pi) * review cost * false-positive rate: the fraud part over bootstrap resamples of the
  frauds, the legitimate part exact, each at 97.5 % so that the sum holds at 95 %;
- amount caught per 10,000 transactions: over bootstrap resamples of the frauds.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np

from fraud_model.decision import AMOUNT, PER_10K, AlertCurve, DecisionRule, alert_curve, decide
from training.evaluate import choose_threshold, expected_cost
from training.intervals import decision_intervals, percentile_interval, rate_interval
from training.options import TrainingOptions

RESAMPLES = 1000


@dataclass(frozen=True)
class Scored:
    """Held-out rows with their served probabilities."""

    labels: np.ndarray
    probabilities: np.ndarray
    features: np.ndarray  # contract order (the Amount is read from it)
    design: np.ndarray  # design weights
    weights: np.ndarray  # production weights (training.weights.production_weights)

    @property
    def fraud_share(self) -> float:
        """The weighted fraud share of these rows: the fraud rate of the live traffic they
        stand for."""
        return float(self.weights[self.labels == 1].sum() / self.weights.sum())

    @property
    def amounts(self) -> np.ndarray:
        return np.asarray(self.features[:, AMOUNT], dtype=np.float64)


@dataclass(frozen=True)
class RuleSetup:
    """The candidate rules as set up on the validation rows, and the one that ships."""

    candidates: dict[str, DecisionRule]
    chosen: DecisionRule
    why: str
    fixed_threshold: float
    curve: AlertCurve
    validation: dict[str, dict[str, Any]]  # each candidate's outcome on the validation rows


def set_up_rules(validation: Scored, options: TrainingOptions) -> RuleSetup:
    """The three rules on the validation rows, and the one to ship: options.decision_rule, or
    with "auto" the cheapest within the alert budget."""
    fixed = choose_threshold(
        validation.labels,
        validation.probabilities,
        strategy=options.threshold_strategy,
        target_precision=options.target_precision,
        weights=validation.weights,
        amounts=validation.amounts,
        review_cost=options.review_cost,
    )
    curve = alert_curve(
        validation.probabilities, validation.labels, validation.weights, "validation rows"
    )
    budget = curve.threshold_for(options.alerts_per_10k)
    candidates = {
        "fixed_threshold": DecisionRule(rule="fixed_threshold", threshold=fixed),
        "alert_budget": DecisionRule(
            rule="alert_budget", threshold=budget, alerts_per_10k=options.alerts_per_10k
        ),
        "expected_cost": DecisionRule(rule="expected_cost", review_cost=options.review_cost),
    }
    outcomes = compare_rules(validation, candidates, options.review_cost)
    if options.decision_rule != "auto":
        chosen, why = candidates[options.decision_rule], "chosen by --decision-rule"
    else:
        within = [
            name
            for name, outcome in outcomes.items()
            if outcome["alerts_per_10k"] <= options.alerts_per_10k
        ]
        cheapest = min(within, key=lambda name: outcomes[name]["cost_per_transaction"])
        chosen = candidates[cheapest]
        why = (
            f"the lowest cost per transaction on the validation rows among the rules within the "
            f"alert budget of {options.alerts_per_10k:g} per 10,000 ({', '.join(within)})"
        )
    return RuleSetup(candidates, chosen, why, fixed, curve, outcomes)


def rule_outcome(
    scored: Scored, rule: DecisionRule, review_cost: float, *, seed: int = 0
) -> dict[str, Any]:
    """Cost per transaction, alerts per 10,000, frauds and amount caught, with 95 % intervals,
    in the live traffic the rows stand for (its fraud rate: `scored.fraud_share`)."""
    rate = scored.fraud_share
    flagged = decide(scored.probabilities, scored.features, rule)
    fraud = scored.labels == 1
    amounts = scored.amounts
    exact = decision_intervals(scored.labels, flagged, scored.design, rate)
    fpr_97 = exact.false_positive_rate  # at 97.5 %: the cost's legitimate part
    fraud_design = scored.design[fraud]
    fraud_cost = np.where(flagged[fraud], review_cost, amounts[fraud])
    caught_amount = np.where(flagged[fraud], amounts[fraud], 0.0)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, int(fraud.sum()), size=(RESAMPLES, int(fraud.sum())))
    sampled_weight = fraud_design[draws]
    cost_means = np.sum(sampled_weight * fraud_cost[draws], axis=1) / sampled_weight.sum(axis=1)
    caught_means = np.sum(sampled_weight * caught_amount[draws], axis=1) / sampled_weight.sum(
        axis=1
    )
    fraud_low, fraud_high = percentile_interval(cost_means, level=0.975)
    cost = expected_cost(scored.labels, flagged, amounts, review_cost, scored.weights)
    caught_low, caught_high = percentile_interval(caught_means)
    per_fraud_caught = float(np.average(caught_amount, weights=fraud_design))
    return {
        "rule": rule.describe(),
        "cut": rule.cut,
        "cost_per_transaction": cost,
        "cost_ci95": [
            rate * fraud_low + (1 - rate) * review_cost * fpr_97.low,
            rate * fraud_high + (1 - rate) * review_cost * fpr_97.high,
        ],
        "alerts_per_10k": exact.alert_rate[0] * PER_10K,
        "alerts_ci95": [exact.alert_rate[1] * PER_10K, exact.alert_rate[2] * PER_10K],
        "frauds": int(fraud.sum()),
        "frauds_caught": int(flagged[fraud].sum()),
        "recall": exact.recall.estimate,
        "recall_ci95": _at_95(flagged[fraud], fraud_design),
        "false_positives": int(flagged[~fraud].sum()),
        "amount": float(amounts[fraud].sum()),
        "amount_caught": float(caught_amount.sum()),
        "amount_caught_per_10k": rate * per_fraud_caught * PER_10K,
        "amount_caught_per_10k_ci95": [rate * caught_low * PER_10K, rate * caught_high * PER_10K],
    }


def _at_95(hits: np.ndarray, design: np.ndarray) -> list[float]:
    return rate_interval(hits, design).as_list()


def compare_rules(
    scored: Scored, candidates: dict[str, DecisionRule], review_cost: float
) -> dict[str, dict[str, Any]]:
    return {name: rule_outcome(scored, rule, review_cost) for name, rule in candidates.items()}


def budget_check(outcome: dict[str, Any], budget_per_10k: float) -> dict[str, Any]:
    """Whether an alert budget held on some rows: the budget against the interval of the alert
    rate observed there (a rule_outcome)."""
    low, high = outcome["alerts_ci95"]
    return {
        "budget_per_10k": budget_per_10k,
        "observed_per_10k": outcome["alerts_per_10k"],
        "observed_ci95": [low, high],
        "within": bool(low <= budget_per_10k <= high),
    }
