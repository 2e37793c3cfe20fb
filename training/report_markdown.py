"""The text of the training report (`report.md`), from the metrics training measured."""

from collections.abc import Iterable
from typing import Any

import numpy as np

from training.evaluate import SplitMetrics, TrainingMetrics
from training.options import TrainingOptions
from training.rules import RuleSetup

REPORT_FILE = "report.md"
PLOTS = {
    "pr": "report_precision_recall.png",
    "roc": "report_roc.png",
    "scores": "report_score_distributions.png",
    "threshold": "report_threshold.png",
    "reliability": "report_reliability.png",
    "importances": "report_feature_importances.png",
}

# Plot key -> (alt text, caption in report.md).
PLOT_CAPTIONS = {
    "pr": ("Precision-recall", "Precision-recall on the test split, as tested and at "
           "production weights"),
    "roc": ("ROC", "ROC curve on the test split"),
    "scores": ("Score distributions", "Served fraud_probability of each class on the test "
               "split (log scales), with the fixed and the alert budget's thresholds"),
    "threshold": ("Threshold trade-offs", "Precision, recall and expected cost against the "
                  "threshold (validation split, production weights), with the fixed threshold "
                  "and the cheapest one"),
    "reliability": ("Reliability", "Reliability diagram: served probability against the "
                    "observed fraud share (test split, production weights)"),
    "importances": ("Feature importances", "Top 15 feature importances (a forest: mean decrease "
                    "in impurity; boosted trees: mean absolute reason-code contribution)"),
}  # fmt: skip

RULE_TITLES = {
    "fixed_threshold": "fixed threshold",
    "alert_budget": "alert budget",
    "expected_cost": "expected cost",
}


def report_markdown(
    setup: RuleSetup,
    options: TrainingOptions,
    metrics: TrainingMetrics,
    summary: dict[str, str],
) -> str:
    splits: dict[str, Any] = metrics.get("splits", {})
    headline = metrics.get("headline_split", options.split)
    lines = [
        "# Training report",
        "",
        *(f"- **{key}:** {value}" for key, value in summary.items()),
        f"- **Decision rule (shipped):** `{setup.chosen.describe()}`: {setup.why}",
        f"- **Review cost:** {options.review_cost:g} per flagged transaction, in the unit of "
        "`Amount`; a missed fraud costs its `Amount` (the cost settings and their source: "
        "docs/MODEL.md)",
        f"- **Alert budget:** {options.alerts_per_10k:g} alerts per 10,000 transactions",
        "",
        *(f"> **Warning:** {warning}\n" for warning in metrics.get("warnings", [])),
        f"## Held-out metrics ({headline} split, shipped rule)",
        "",
        *_metrics_table(metrics["test"], metrics["test_at_production_rate"]),
        "",
        "In brackets, 95 % intervals: Clopper-Pearson on recall and the false-positive rate "
        "(on Kish's effective size where design weights differ); precision and alerts derived "
        "from those two (each at 97.5 %) at the fraud rate of the live traffic the test rows "
        "stand for; PR-AUC and ROC-AUC over bootstrap resamples of the test rows. Production "
        "weights: each row counts as the live transactions it stands for (its design weight, "
        "legitimate rows scaled once for the whole data set to the production fraud rate), so "
        "a test period keeps the fraud rate it had.",
        "",
        _confusion(metrics["test"], metrics["test_at_production_rate"]),
        "",
        *_splits_section(splits),
        *_rules_section(splits, headline),
        *_validation_section(splits),
        *_calibration_section(splits, headline, options.model_family),
        *_stability_section(metrics.get("stability", {})),
        "## Plots",
        "",
    ]
    for key, (alt, caption) in PLOT_CAPTIONS.items():
        lines += [f"**{caption}**", "", f"![{alt}]({PLOTS[key]})", ""]
    return "\n".join(lines)


def _interval(values: Iterable[float], digits: int = 3) -> str:
    low, high = values
    return f"[{low:.{digits}f}, {high:.{digits}f}]"


def _with(metrics: SplitMetrics, name: str, digits: int = 4) -> str:
    fields: dict[str, Any] = dict(metrics)
    value, interval = fields[name], fields.get("ci95", {}).get(name)
    if interval is None:
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} {_interval(interval, digits)}"


def _metrics_table(as_tested: SplitMetrics, live: SplitMetrics) -> list[str]:
    rows = [("as tested", as_tested), ("at production weights", live)]
    return [
        "| rows | frauds | weighting | PR-AUC | ROC-AUC | precision | recall | false-positive "
        "rate | alerts per 10,000 |",
        "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        *(
            f"| {m['rows']} | {m['frauds']} | {name} | {_with(m, 'pr_auc')} | "
            f"{_with(m, 'roc_auc')} | {_with(m, 'precision')} | {_with(m, 'recall')} | "
            f"{_with(m, 'false_positive_rate', 5)} | {_with(m, 'alerts_per_10k', 1)} |"
            for name, m in rows
        ),
    ]


def _confusion(as_tested: SplitMetrics, live: SplitMetrics) -> str:
    cm, weighted = as_tested["confusion_matrix"], live["confusion_matrix"]
    return (
        f"Confusion matrix (test, as tested): tn={cm['tn']:.0f} fp={cm['fp']:.0f} "
        f"fn={cm['fn']:.0f} tp={cm['tp']:.0f}. At production weights (each row counts as the "
        f"live transactions it stands for): tn={weighted['tn']:.1f} fp={weighted['fp']:.1f} "
        f"fn={weighted['fn']:.1f} tp={weighted['tp']:.1f}."
    )


def _splits_section(splits: dict[str, Any]) -> list[str]:
    if not splits:
        return []
    lines = [
        "## The splits",
        "",
        "| split | fit / validation / test rows | test frauds | PR-AUC at production weights "
        "| rule | precision | recall | alerts per 10,000 | cost per transaction |",
        "| --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for name, split in splits.items():
        live, rows = split["test_at_production_rate"], split["rows"]
        cost = split["rules_on_test"][split["decision_rule_name"]]
        lines.append(
            f"| {name} | {rows['fit']} / {rows['validation']} / {rows['test']} | "
            f"{live['frauds']} | {_with(live, 'pr_auc')} | "
            f"{RULE_TITLES[split['decision_rule_name']]} | {_with(live, 'precision')} | "
            f"{_with(live, 'recall')} | {_with(live, 'alerts_per_10k', 1)} | "
            f"{cost['cost_per_transaction']:.4f} {_interval(cost['cost_ci95'], 4)} |"
        )
    lines.append("")
    for name, split in splits.items():
        lines.append(
            f"- **{name}:** {split['description']}. {split['duplicate_rows']} rows are exact "
            f"duplicates of another, in {split['duplicate_groups']} groups; groups found in more "
            f"than one of fit, validation and test: {split['groups_across_parts']}."
        )
    return [*lines, ""]


def _rules_section(splits: dict[str, Any], headline: str) -> list[str]:
    if not splits:
        return []
    lines = [
        "## Decision rules compared (test rows)",
        "",
        "Each rule set up on the split's validation rows; cost in the unit of `Amount` per live "
        "transaction (a missed fraud costs its `Amount`, a review the review cost). Cost "
        "interval: the frauds' part over 1,000 bootstrap resamples and the legitimate part "
        "exact, each at 97.5 %; amount caught per 10,000 transactions over bootstrap resamples "
        "of the frauds.",
        "",
    ]
    for name, split in splits.items():
        shipped = split["decision_rule_name"]
        lines += [
            f"**{name} split**" + (" (headline)" if name == headline else ""),
            "",
            "| rule | decides | cost per transaction | alerts per 10,000 | frauds caught | "
            "recall | amount caught | amount caught per 10,000 |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for rule, outcome in split["rules_on_test"].items():
            marker = " **(shipped)**" if rule == shipped else ""
            share = outcome["amount_caught"] / outcome["amount"] if outcome["amount"] else 0.0
            lines.append(
                f"| {RULE_TITLES[rule]}{marker} | `{outcome['rule']}` | "
                f"{outcome['cost_per_transaction']:.4f} {_interval(outcome['cost_ci95'], 4)} | "
                f"{outcome['alerts_per_10k']:.1f} {_interval(outcome['alerts_ci95'], 1)} | "
                f"{outcome['frauds_caught']} of {outcome['frauds']} | "
                f"{outcome['recall']:.3f} {_interval(outcome['recall_ci95'])} | "
                f"{outcome['amount_caught']:,.0f} of {outcome['amount']:,.0f} ({share:.0%}) | "
                f"{outcome['amount_caught_per_10k']:,.0f} "
                f"{_interval(outcome['amount_caught_per_10k_ci95'], 0)} |"
            )
        check = split["alert_budget_on_test"]
        held = "within" if check["within"] else "**outside**"
        validation = split["rules_on_validation"]
        lines += [
            "",
            f"Chosen on the validation rows: {split['why']} (validation cost per transaction: "
            + ", ".join(
                f"{RULE_TITLES[rule]} {outcome['cost_per_transaction']:.4f} at "
                f"{outcome['alerts_per_10k']:.1f} alerts per 10,000"
                for rule, outcome in validation.items()
            )
            + f"). The alert budget of {check['budget_per_10k']:g} per 10,000 is {held} the "
            f"interval of the alert rate its threshold raised on the test rows, "
            f"{check['observed_per_10k']:.1f} {_interval(check['observed_ci95'], 1)}.",
            "",
        ]
    return lines


def _validation_section(splits: dict[str, Any]) -> list[str]:
    if not splits:
        return []
    lines = [
        "## Validation against test (shipped rule)",
        "",
        "The rule was set up on the validation rows; if its behaviour there and on the test "
        "rows differs beyond both 95 % intervals, it is flagged.",
        "",
        "| split | measure | validation | test |",
        "| --- | --- | ---: | ---: |",
    ]
    flags = []
    for name, split in splits.items():
        check = split["validation_against_test"]
        for metric, digits in (("recall", 3), ("false_positive_rate", 5), ("alerts_per_10k", 1)):
            value, test = check["validation"][metric], check["test"][metric]
            lines.append(
                f"| {name} | {metric.replace('_', ' ')} | {value[0]:.{digits}f} "
                f"{_interval(value[1:], digits)} | {test[0]:.{digits}f} "
                f"{_interval(test[1:], digits)} |"
            )
        if check["disagree"]:
            flags.append(
                f"> **Flag ({name}):** validation and test disagree beyond their intervals on "
                f"{', '.join(check['disagree'])}: the threshold set up on validation does not "
                "behave the same on the test rows.\n"
            )
    return [*lines, "", *(flags or ["No measure disagrees beyond its intervals.", ""]), ""]


def _calibration_section(splits: dict[str, Any], headline: str, family: str) -> list[str]:
    if not splits:
        return []
    served = (
        "Served fraud_probability = expit(intercept + slope * log-odds), the log-odds the "
        "boosted trees give, fitted at production weights"
        if family == "hist_gradient_boosting"
        else "Served fraud_probability = expit(intercept + slope * logit((T s + 0.5) / (T + 1))), "
        "s the forest's score and T the trees it is a mean over, fitted at production weights"
    )
    lines = [
        "## Calibration",
        "",
        served
        + " (no probability is exactly 0 or 1). Checked on the test rows at production weights: "
        "Brier score, log loss, calibration intercept (logistic regression of fraud on the "
        "served log-odds as an offset) and calibration slope (on the served log-odds), with "
        "95 % intervals from robust (sandwich) standard errors. A calibrated model has "
        "intercept 0 and slope 1.",
        "",
        "| split | fitted on | Platt intercept | Platt slope | Brier | log loss | mean "
        "probability / fraud share | calibration intercept | calibration slope |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, split in splits.items():
        fit, test = split["calibration"], split["calibration"]["test"]
        lines.append(
            f"| {name} | {fit['rows']} rows, {fit['frauds']} frauds | {fit['intercept']:.3f} "
            f"{_interval(fit['intercept_ci95'], 2)} | {fit['slope']:.3f} "
            f"{_interval(fit['slope_ci95'], 2)} | {test['brier']:.6f} | {test['log_loss']:.5f} "
            f"| {test['mean_probability']:.5f} / {test['fraud_share']:.5f} | "
            f"{test['intercept']:.3f} {_interval(test['intercept_ci95'], 2)} | "
            f"{test['slope']:.3f} {_interval(test['slope_ci95'], 2)} |"
        )
    bins = splits[headline]["calibration"]["test"]["reliability"]
    lines += [
        "",
        f"Reliability ({headline} test rows, production weights; observed share with its "
        "Clopper-Pearson interval on the bin's effective size):",
        "",
        "| served probability | rows | frauds | share of live traffic | mean probability | "
        "observed fraud share |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        *(
            f"| [{b['low_edge']:g}, {b['high_edge']:g}) | {b['rows']} | {b['frauds']} | "
            f"{b['share']:.4f} | {b['predicted']:.5f} | {b['observed']:.5f} "
            f"[{b['observed_low']:.5f}, {b['observed_high']:.5f}] |"
            for b in bins
        ),
        "",
    ]
    return lines


def _spread(values: list[float], digits: int) -> str:
    array = np.asarray(values)
    return (
        f"median {np.median(array):.{digits}f}, from {array.min():.{digits}f} to "
        f"{array.max():.{digits}f}"
    )


def _seed_table(key: str, title: str, runs: list[dict[str, Any]], columns: list[str]) -> list[str]:
    """One row per run: its seed (`key`), then `columns` among SEED_COLUMNS."""
    heads = [SEED_COLUMNS[column][0] for column in columns]
    return [
        f"| {title} | " + " | ".join(heads) + " |",
        "| ---: | " + " | ".join("---" if h == "rule chosen" else "---:" for h in heads) + " |",
        *(
            f"| {run[key]} | "
            + " | ".join(SEED_COLUMNS[column][1](run[column]) for column in columns)
            + " |"
            for run in runs
        ),
        "",
    ]


SEED_COLUMNS: dict[str, tuple[str, Any]] = {
    "fixed_threshold": ("fixed threshold", lambda value: f"{value:.4g}"),
    "alert_budget_threshold": ("alert budget's threshold", lambda value: f"{value:.4g}"),
    "decision_rule": ("rule chosen", lambda value: RULE_TITLES[value]),
    "pr_auc_at_production_rate": ("PR-AUC", lambda value: f"{value:.4f}"),
    "calibration_slope": ("calibration slope", lambda value: f"{value:.3f}"),
    "calibration_intercept": ("calibration intercept", lambda value: f"{value:.3f}"),
}
CHECKS = ["pr_auc_at_production_rate", "calibration_slope", "calibration_intercept"]


def _stability_section(stability: dict[str, Any]) -> list[str]:
    runs = stability.get("model_seeds", [])
    if len(runs) < 2:
        return []
    lines = [
        "## Stability across seeds",
        "",
        f"The {stability['split']} split grown with {len(runs)} model seeds, each calibrated "
        "and its rules set up on its validation rows; PR-AUC and the calibration's check on its "
        "test rows at production weights:",
        "",
        *_seed_table("seed", "model seed", runs,
                     ["fixed_threshold", "alert_budget_threshold", "decision_rule", *CHECKS]),
        "Fixed threshold: " + _spread([run["fixed_threshold"] for run in runs], 4)
        + "; alert budget's threshold: "
        + _spread([run["alert_budget_threshold"] for run in runs], 4)
        + "; PR-AUC: " + _spread([run["pr_auc_at_production_rate"] for run in runs], 4)
        + ".",
        "",
    ]  # fmt: skip
    split_runs = stability.get("split_seeds", [])
    if len(split_runs) > 1:
        lines += [
            f"The random split drawn with {len(split_runs)} split seeds (model seed fixed), on "
            "each one's test rows at production weights:",
            "",
            *_seed_table("split_seed", "split seed", split_runs, CHECKS),
            "PR-AUC: " + _spread([run["pr_auc_at_production_rate"] for run in split_runs], 4)
            + "; calibration slope: "
            + _spread([run["calibration_slope"] for run in split_runs], 3)
            + ".",
            "",
        ]  # fmt: skip
    return lines
