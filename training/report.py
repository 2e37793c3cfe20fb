"""The training report: `report.md` and its plots, written into the artifact with the model.

Plots are drawn on matplotlib Figures rendered by the Agg canvas directly: no pyplot, so no
global backend, no window and nothing left open. matplotlib is imported only when a report is
built.
"""

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_curve

from fraud_model.features import FEATURE_NAMES
from training.evaluate import (
    SplitMetrics,
    TrainingMetrics,
    cost_curve,
    prevalence_weights,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.axis import Axis
    from matplotlib.figure import Figure

REPORT_FILE = "report.md"
FEW_FRAUDS = 30  # below this, frauds are drawn one by one instead of as a histogram
PLOTS = {
    "pr": "report_precision_recall.png",
    "roc": "report_roc.png",
    "scores": "report_score_distributions.png",
    "threshold": "report_threshold.png",
    "importances": "report_feature_importances.png",
}

# Plot key -> (alt text, caption in report.md).
PLOT_CAPTIONS = {
    "pr": ("Precision-recall", "Precision-recall on the test split, as tested and at the "
           "production fraud rate"),
    "roc": ("ROC", "ROC curve on the test split"),
    "scores": ("Score distributions", "Served fraud_probability of each class on the test "
               "split (log scales)"),
    "threshold": ("Threshold trade-offs", "Precision, recall and expected cost against the "
                  "threshold (validation split, production rate), with the chosen threshold "
                  "and the cheapest one"),
    "importances": ("Feature importances", "Top 15 feature importances (mean decrease in "
                    "impurity)"),
}  # fmt: skip


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
    metrics: TrainingMetrics,
    summary: dict[str, str],
) -> dict[str, bytes]:
    """File name -> content (report.md and five PNGs), for save_artifact(extra_files=...).

    `summary`: label -> text lines at the top of the report (data, forest, split, ...).
    """
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


def _figure() -> tuple["Figure", "Axes"]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.2), dpi=100)
    FigureCanvasAgg(figure)  # renders PNGs without pyplot's global state
    return figure, figure.subplots()


def _png(figure: "Figure") -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _precision_recall(test: Split, production_rate: float) -> bytes:
    figure, axes = _figure()
    # The production-rate curve first, the held-out one over it, dashed: where no legitimate row
    # is flagged both are at precision 1 and would hide each other.
    styles = (
        ("at production rate", production_rate, {"linewidth": 3, "alpha": 0.7}),
        ("held-out test (as tested)", None, {"linestyle": "--"}),
    )
    for label, rate, style in styles:
        weights = prevalence_weights(test.labels, rate)
        precision, recall, _ = precision_recall_curve(
            test.labels, test.scores, sample_weight=weights
        )
        axes.plot(recall, precision, label=label, **style)
    axes.set(xlabel="recall", ylabel="precision", title="Precision-recall (test split)")
    axes.legend(title="where the lines meet, they coincide", fontsize="small")
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
    bins = np.logspace(-6, 0, 50).tolist()
    legitimate = np.clip(test.scores[test.labels == 0], 1e-6, 1)
    frauds = np.clip(test.scores[test.labels == 1], 1e-6, 1)
    axes.hist(legitimate, bins=bins, alpha=0.6, label="legitimate")
    if len(frauds) >= FEW_FRAUDS:
        axes.hist(frauds, bins=bins, alpha=0.6, label="fraud")
    else:
        # A handful of frauds as bars would be a few wide bars of height 1: show each one.
        axes.vlines(frauds, 0.5, 2, color="tab:orange", label=f"fraud (each of {len(frauds)})")
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
    axes.set(xscale=_scale(cuts), xlabel="threshold on fraud_probability", ylabel="share",
             title="Threshold trade-offs (validation, production rate)")  # fmt: skip
    cost_axes = axes.twinx()
    cost_axes.plot(thresholds, costs, color="tab:red", label="expected cost")
    cheapest = int(np.argmin(costs))
    cost_axes.plot(thresholds[cheapest], costs[cheapest], "o", color="tab:red",
                   label=f"lowest cost, at {thresholds[cheapest]:.3g}")  # fmt: skip
    # Usually log: flagging everything costs orders of magnitude more than the minimum.
    cost_axes.set(
        yscale=_scale(costs), ylabel=f"expected cost per transaction (review {review_cost:g})"
    )
    for axis in (axes.xaxis, cost_axes.yaxis):
        _plain_numbers(axis)
    lines = axes.get_legend_handles_labels()[0] + cost_axes.get_legend_handles_labels()[0]
    axes.legend(lines, [str(line.get_label()) for line in lines], loc="upper center",
                bbox_to_anchor=(0.5, -0.18), ncol=3, fontsize="small")  # fmt: skip
    return _png(figure)


def _scale(values: np.ndarray) -> str:
    """Log where the positive values span at least two decades; below that, a log axis has at
    most one labelled tick and crowds the rest."""
    positive = np.asarray(values)[np.asarray(values) > 0]
    return "log" if len(positive) and positive.max() / positive.min() >= 100 else "linear"


def _plain_numbers(axis: "Axis") -> None:
    """Tick labels as plain numbers (0.02, not 2e-2 as a power of ten), none on minor ticks."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


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
    metrics: TrainingMetrics,
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
            f"| {name} | {m['rows']} | {m['frauds']} | {_with_interval(m, 'pr_auc')} "
            f"| {m['roc_auc']:.4f} | {_with_interval(m, 'precision')} "
            f"| {_with_interval(m, 'recall')} | {m['f1']:.4f} |"
            for name, m in rows
        ),
    ]
    cm = metrics["test"]["confusion_matrix"]
    live = metrics["test_at_production_rate"]["confusion_matrix"]
    cost = metrics.get("expected_cost_per_transaction")
    lines = [
        "# Training report",
        "",
        *(f"- **{key}:** {value}" for key, value in summary.items()),
        f"- **Decision threshold:** `fraud_probability >= {threshold:.6f}` ({strategy})",
        f"- **Review cost:** {review_cost:g} per flagged transaction (min_cost and the cost curve)",
        "",
        *(f"> **Warning:** {warning}\n" for warning in metrics.get("warnings", [])),
        "## Held-out metrics",
        "",
        *table,
        "",
        "In brackets, 95 % intervals over bootstrap resamples of the test rows (frauds and "
        "legitimate rows resampled separately).",
        "",
        f"Confusion matrix (test, as tested): tn={cm['tn']:.0f} fp={cm['fp']:.0f} "
        f"fn={cm['fn']:.0f} tp={cm['tp']:.0f}. Re-weighted to the production rate (non-fraud "
        f"rows count as many live ones): tn={live['tn']:.1f} fp={live['fp']:.1f} "
        f"fn={live['fn']:.0f} tp={live['tp']:.0f}.",
    ]
    if cost is not None:
        lines += [
            "",
            f"Expected cost at the threshold (test, per live transaction, in the unit of "
            f"`Amount`): {cost:.4f}. A missed fraud costs its `Amount`, a flagged transaction "
            f"the review cost.",
        ]
    lines += ["", "## Plots", ""]
    for key, (alt, caption) in PLOT_CAPTIONS.items():
        lines += [f"**{caption}**", "", f"![{alt}]({PLOTS[key]})", ""]
    return "\n".join(lines)


def _with_interval(metrics: SplitMetrics, name: Literal["pr_auc", "precision", "recall"]) -> str:
    interval = metrics.get("ci95", {}).get(name)
    if interval is None:
        return f"{metrics[name]:.4f}"
    return f"{metrics[name]:.4f} [{interval[0]:.3f}, {interval[1]:.3f}]"
