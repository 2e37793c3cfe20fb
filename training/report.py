"""The training report: `report.md` and its plots, written into the artifact with the model."""

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_curve

from fraud_model.features import FEATURE_NAMES
from training.evaluate import cost_curve, prevalence_weights

REPORT_FILE = "report.md"
PLOTS = {
    "pr": "report_precision_recall.png",
    "roc": "report_roc.png",
    "scores": "report_score_distributions.png",
    "threshold": "report_threshold.png",
    "importances": "report_feature_importances.png",
}


@dataclass(frozen=True)
class Split:
    labels: np.ndarray
    scores: np.ndarray  # served fraud_probability
    amounts: np.ndarray


def build_report(
    *,
    validation: Split,
    test: Split,
    threshold: float,
    strategy: str,
    review_cost: float,
    production_rate: float,
    importances: np.ndarray,
    metrics: dict[str, Any],
    summary: dict[str, str],
) -> dict[str, bytes]:
    """File name -> content, for save_artifact(extra_files=...)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    plots = {
        PLOTS["pr"]: _precision_recall(test, production_rate),
        PLOTS["roc"]: _roc(test),
        PLOTS["scores"]: _score_distributions(test, threshold),
        PLOTS["threshold"]: _threshold_tradeoffs(
            validation, threshold, review_cost, production_rate
        ),
        PLOTS["importances"]: _importances(importances),
    }
    markdown = _markdown(threshold, strategy, review_cost, metrics, summary)
    return {REPORT_FILE: markdown.encode()} | plots


def _figure():
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(6.4, 4.2), dpi=100)


def _png(figure) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def _precision_recall(test: Split, production_rate: float) -> bytes:
    figure, axes = _figure()
    for label, rate in (("held-out test", None), ("at production rate", production_rate)):
        weights = prevalence_weights(test.labels, rate)
        precision, recall, _ = precision_recall_curve(
            test.labels, test.scores, sample_weight=weights
        )
        axes.plot(recall, precision, label=label)
    axes.set(xlabel="recall", ylabel="precision", title="Precision-recall (test split)")
    axes.legend()
    return _png(figure)


def _roc(test: Split) -> bytes:
    figure, axes = _figure()
    false_positive, true_positive, _ = roc_curve(test.labels, test.scores)
    axes.plot(false_positive, true_positive)
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey")
    axes.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (test split)")
    return _png(figure)


def _score_distributions(test: Split, threshold: float) -> bytes:
    figure, axes = _figure()
    bins = np.logspace(-6, 0, 50)
    for label, name in ((0, "legitimate"), (1, "fraud")):
        axes.hist(np.clip(test.scores[test.labels == label], 1e-6, 1), bins=bins, alpha=0.6,
                  label=name)  # fmt: skip
    axes.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.4g}")
    axes.set(xscale="log", yscale="log", xlabel="fraud_probability (0 drawn at 1e-6)",
             ylabel="transactions",
             title="Served scores by class (test split)")  # fmt: skip
    axes.legend()
    return _png(figure)


def _threshold_tradeoffs(
    validation: Split, threshold: float, review_cost: float, production_rate: float
) -> bytes:
    weights = prevalence_weights(validation.labels, production_rate)
    precision, recall, cuts = precision_recall_curve(
        validation.labels, validation.scores, sample_weight=weights
    )
    thresholds, costs = cost_curve(
        validation.labels, validation.scores, validation.amounts, review_cost, production_rate
    )
    figure, axes = _figure()
    axes.plot(cuts, precision[:-1], label="precision")
    axes.plot(cuts, recall[:-1], label="recall")
    axes.axvline(threshold, color="black", linestyle="--", label="chosen threshold")
    axes.set(xscale="log", xlabel="threshold on fraud_probability", ylabel="share",
             title="Threshold trade-offs (validation, production rate)")  # fmt: skip
    cost_axes = axes.twinx()
    finite = np.isfinite(thresholds)
    cost_axes.plot(thresholds[finite], costs[finite], color="tab:red", label="expected cost")
    cost_axes.set_ylabel(f"expected cost per transaction (review {review_cost:g})")
    lines = axes.get_legend_handles_labels()[0] + cost_axes.get_legend_handles_labels()[0]
    axes.legend(lines, [line.get_label() for line in lines], loc="center left")
    return _png(figure)


def _importances(importances: np.ndarray, top: int = 15) -> bytes:
    order = np.argsort(importances)[-top:]
    figure, axes = _figure()
    axes.barh([FEATURE_NAMES[i] for i in order], importances[order])
    axes.set(xlabel="mean decrease in impurity", title=f"Top {top} feature importances")
    return _png(figure)


def _markdown(
    threshold: float,
    strategy: str,
    review_cost: float,
    metrics: dict[str, Any],
    summary: dict[str, str],
) -> str:
    rows = [
        ("held-out test", metrics["test"]),
        ("at production rate", metrics["test_at_production_rate"]),
    ]
    table = [
        "| split | rows | frauds | PR-AUC | ROC-AUC | precision | recall | F1 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *(
            f"| {name} | {m['rows']} | {m['frauds']} | {m['pr_auc']:.4f} | {m['roc_auc']:.4f} "
            f"| {m['precision']:.4f} | {m['recall']:.4f} | {m['f1']:.4f} |"
            for name, m in rows
        ),
    ]
    cm = metrics["test"]["confusion_matrix"]
    cost = metrics.get("expected_cost_per_transaction")
    lines = [
        "# Training report",
        "",
        *(f"- **{key}:** {value}" for key, value in summary.items()),
        f"- **Decision threshold:** {threshold:.6f} ({strategy})",
        f"- **Review cost used for cost curves:** {review_cost:g} per flagged transaction",
        "",
        "## Held-out metrics",
        "",
        *table,
        "",
        f"Confusion matrix (test): tn={cm['tn']:.0f} fp={cm['fp']:.0f} fn={cm['fn']:.0f} "
        f"tp={cm['tp']:.0f}.",
    ]
    if cost is not None:
        lines += ["", f"Expected cost per live transaction at the threshold (test): {cost:.4f}."]
    lines += [
        "",
        "## Plots",
        "",
        f"![Precision-recall]({PLOTS['pr']})",
        f"![ROC]({PLOTS['roc']})",
        f"![Score distributions]({PLOTS['scores']})",
        f"![Threshold trade-offs]({PLOTS['threshold']})",
        f"![Feature importances]({PLOTS['importances']})",
        "",
    ]
    return "\n".join(lines)
