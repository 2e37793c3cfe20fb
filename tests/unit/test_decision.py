"""Decision rules: what each one flags, the alert curve that turns a budget into a threshold, and
which rule a replica serves for a given user_config."""

import numpy as np
import pytest

from fraud_model.decision import (
    AMOUNT,
    AlertCurve,
    DecisionRule,
    alert_curve,
    decide,
    serving_rule,
)

FIXED = DecisionRule(rule="fixed_threshold", threshold=0.3)
COST = DecisionRule(rule="expected_cost", review_cost=5.0)


def rows(amounts: list[float]) -> np.ndarray:
    features = np.zeros((len(amounts), 29), dtype=np.float32)
    features[:, AMOUNT] = amounts
    return features


def test_expected_cost_flags_when_the_expected_loss_reaches_the_review_cost() -> None:
    probabilities = np.array([0.5, 0.5, 0.01, 0.9, 0.2])
    features = rows([10.0, 9.0, 600.0, 0.0, 25.0])
    # 5.0 >= 5, 4.5 < 5, 6 >= 5, 0 (a fraud of amount 0 costs nothing to miss), 5.0 >= 5
    assert decide(probabilities, features, COST).tolist() == [True, False, True, False, True]
    assert decide(probabilities, features, FIXED).tolist() == [True, True, False, True, False]
    assert COST.cut == 5.0 and FIXED.cut == 0.3


def test_the_alert_curve_turns_a_budget_into_the_lowest_threshold_within_it() -> None:
    probabilities = np.array([0.9, 0.8, 0.8, 0.4, 0.1, 0.05])
    labels = np.array([1, 0, 1, 0, 0, 0])
    weights = np.array([1.0, 1.0, 1.0, 2.0, 2.0, 3.0])  # 10 live transactions
    curve = alert_curve(probabilities, labels, weights, "test rows")
    assert curve.thresholds[1:] == [0.9, 0.8, 0.4, 0.1, 0.05]
    assert curve.thresholds[0] > 0.9  # flags nothing
    np.testing.assert_allclose(curve.alerts_per_10k, [0, 1000, 3000, 5000, 7000, 10_000])
    np.testing.assert_allclose(curve.false_positive_rate, [0, 0, 1 / 8, 3 / 8, 5 / 8, 1])
    assert curve.threshold_for(alerts_per_10k=3000) == 0.8
    assert curve.threshold_for(alerts_per_10k=2999) == 0.9
    assert curve.threshold_for(alerts_per_10k=500) == curve.thresholds[0]
    assert curve.threshold_for(max_false_positive_rate=0.4) == 0.4
    # Round trip through the artifact's JSON keeps every threshold exactly.
    assert AlertCurve.model_validate_json(curve.model_dump_json()) == curve


def test_an_alert_curve_out_of_order_is_refused() -> None:
    with pytest.raises(ValueError, match="out of order"):
        AlertCurve(source="x", thresholds=[0.5, 0.6], alerts_per_10k=[0, 1],
                   false_positive_rate=[0, 0.1])  # fmt: skip


CURVE = AlertCurve(
    source="validation rows",
    thresholds=[0.95, 0.9, 0.5, 0.2, 0.05],
    alerts_per_10k=[0.0, 5.0, 12.0, 30.0, 80.0],
    false_positive_rate=[0.0, 0.0, 0.0004, 0.002, 0.007],
)
BUDGET = DecisionRule(rule="alert_budget", threshold=0.5, alerts_per_10k=12.0)


@pytest.mark.parametrize(
    ("shipped", "config", "expected"),
    [
        # Nothing set: the artifact's own rule.
        (COST, {}, COST),
        # threshold alone: fixed_threshold, as before decision rules existed.
        (COST, {"threshold": 0.25}, DecisionRule(rule="fixed_threshold", threshold=0.25)),
        (FIXED, {"rule": "fixed_threshold"}, FIXED),
        (COST, {"rule": "fixed_threshold"}, FIXED),  # the artifact's fixed threshold
        # A budget set at serving becomes a threshold on the artifact's alert curve.
        (FIXED, {"rule": "alert_budget", "alerts_per_10k": 30.0},
         DecisionRule(rule="alert_budget", threshold=0.2, alerts_per_10k=30.0)),
        (FIXED, {"rule": "alert_budget", "max_false_positive_rate": 0.001},
         DecisionRule(rule="alert_budget", threshold=0.5, max_false_positive_rate=0.001)),
        # Named without numbers, a rule the artifact ships takes the artifact's numbers.
        (BUDGET, {"rule": "alert_budget"}, BUDGET),
        (COST, {"rule": "expected_cost"}, COST),
        (FIXED, {"rule": "expected_cost", "review_cost": 12.5},
         DecisionRule(rule="expected_cost", review_cost=12.5)),
    ],
)  # fmt: skip
def test_the_rule_a_replica_serves(
    shipped: DecisionRule, config: dict[str, object], expected: DecisionRule
) -> None:
    assert serving_rule(shipped, CURVE, 0.3, **config) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"rule": "expected_cost"}, "needs review_cost"),
        ({"rule": "alert_budget"}, "needs alerts_per_10k or max_false_positive_rate"),
        ({"rule": "alert_budget", "threshold": 0.3}, "threshold applies to fixed_threshold"),
        ({"review_cost": 3.0}, "need decision_rule to say which rule"),
        ({"rule": "alert_budget", "alerts_per_10k": 5.0, "max_false_positive_rate": 0.1},
         "one of them"),
    ],
)  # fmt: skip
def test_a_config_that_makes_no_rule_is_refused_with_what_is_missing(
    config: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        serving_rule(FIXED, CURVE, 0.3, **config)  # type: ignore[arg-type]


def test_an_alert_budget_needs_an_artifact_with_an_alert_curve() -> None:
    with pytest.raises(ValueError, match="has none"):
        serving_rule(FIXED, None, 0.3, rule="alert_budget", alerts_per_10k=10.0)
