"""The training report: `report.md` and its plots, written into the artifact with the model.

Plots are drawn on matplotlib Figures rendered by the Agg canvas directly: no pyplot, so no
global backend, no window and nothing left open. matplotlib is imported only when a report is
built. The text is training.report_markdown's.
"""

import io
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_curve

from fraud_model.features import FEATURE_NAMES
from training.evaluate import TrainingMetrics, cost_curve
from training.options import TrainingOptions
from training.report_markdown import PLOT_CAPTIONS, PLOTS, REPORT_FILE, report_markdown
from training.rules import RuleSetup, Scored

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.axis import Axis
    from matplotlib.figure import Figure

__all__ = ["PLOTS", "PLOT_CAPTIONS", "REPORT_FILE", "build_report"]

FEW_FRAUDS = 30  # below this, frauds are drawn one by one instead of as a histogram


def build_report(
    *,
    validation: Scored,
    test: Scored,
    setup: RuleSetup,
    options: TrainingOptions,
    importances: np.ndarray,
    metrics: TrainingMetrics,
    summary: dict[str, str],
    importance_label: str,
) -> dict[str, bytes]:
    """File name -> content (report.md and its PNGs), for save_artifact(extra_files=...).

    `validation`, `test`: the headline split's held-out rows as served; `summary`: label -> text
    at the top of the report (data, weights, forest, split, ...).
    """
    budget = setup.candidates["alert_budget"].cut
    plots = {
        PLOTS["pr"]: _precision_recall(test),
        PLOTS["roc"]: _roc(test),
        PLOTS["scores"]: _score_distributions(test, setup.fixed_threshold, budget),
        PLOTS["threshold"]: _threshold_tradeoffs(validation, setup.fixed_threshold, options),
        PLOTS["reliability"]: _reliability(metrics.get("calibration", {})),
        PLOTS["importances"]: _importances(importances, importance_label),
    }
    markdown = report_markdown(setup, options, metrics, summary)
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


def _precision_recall(test: Scored) -> bytes:
    figure, axes = _figure()
    # The production-rate curve first, the held-out one over it, dashed: where no legitimate row
    # is flagged both are at precision 1 and would hide each other.
    styles: tuple[tuple[str, np.ndarray | None, dict[str, Any]], ...] = (
        ("at production weights", test.weights, {"linewidth": 3, "alpha": 0.7}),
        ("held-out test (as tested)", None, {"linestyle": "--"}),
    )
    for label, weights, style in styles:
        precision, recall, _ = precision_recall_curve(
            test.labels, test.probabilities, sample_weight=weights
        )
        axes.plot(recall, precision, label=label, **style)
    axes.set(xlabel="recall", ylabel="precision", title="Precision-recall (test split)")
    axes.legend(title="where the lines meet, they coincide", fontsize="small")
    return _png(figure)


def _roc(test: Scored) -> bytes:
    figure, axes = _figure()
    false_positive, true_positive, _ = roc_curve(
        test.labels, test.probabilities, sample_weight=test.weights
    )
    axes.plot(false_positive, true_positive)
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey")
    axes.set(xlabel="false positive rate", ylabel="true positive rate",
             title="ROC (test split, production weights)")  # fmt: skip
    return _png(figure)


def _score_distributions(test: Scored, fixed: float, budget: float) -> bytes:
    figure, axes = _figure()
    bins = np.logspace(-6, 0, 50).tolist()
    legitimate = np.clip(test.probabilities[test.labels == 0], 1e-6, 1)
    frauds = np.clip(test.probabilities[test.labels == 1], 1e-6, 1)
    axes.hist(legitimate, bins=bins, alpha=0.6, label="legitimate")
    if len(frauds) >= FEW_FRAUDS:
        axes.hist(frauds, bins=bins, alpha=0.6, label="fraud")
    else:
        # A handful of frauds as bars would be a few wide bars of height 1: show each one.
        axes.vlines(frauds, 0.5, 2, color="tab:orange", label=f"fraud (each of {len(frauds)})")
    axes.axvline(fixed, color="black", linestyle="--", label=f"fixed threshold {fixed:.4g}")
    axes.axvline(budget, color="grey", linestyle=":", label=f"alert budget's {budget:.4g}")
    axes.set(xscale="log", yscale="log", xlabel="fraud_probability (below 1e-6 drawn at 1e-6)",
             ylabel="transactions",
             title="Served scores by class (test split)")  # fmt: skip
    axes.legend()
    return _png(figure)


def _threshold_tradeoffs(validation: Scored, threshold: float, options: TrainingOptions) -> bytes:
    review_cost = options.review_cost
    precision, recall, cuts = precision_recall_curve(
        validation.labels, validation.probabilities, sample_weight=validation.weights
    )
    thresholds, costs = cost_curve(
        validation.labels,
        validation.probabilities,
        validation.amounts,
        review_cost,
        validation.weights,
    )
    figure, axes = _figure()
    axes.plot(cuts, precision[:-1], label="precision")
    axes.plot(cuts, recall[:-1], label="recall")
    axes.axvline(threshold, color="black", linestyle="--", label="fixed threshold")
    axes.set(xscale=_scale(cuts), xlabel="threshold on fraud_probability", ylabel="share",
             title="Threshold trade-offs (validation, production weights)")  # fmt: skip
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


def _reliability(calibration: dict[str, Any]) -> bytes:
    """Predicted against observed fraud share per probability bin (test rows, production
    weights), the observed share with its exact interval, on log axes."""
    figure, axes = _figure()
    bins = calibration.get("test", {}).get("reliability", [])
    predicted = np.array([b["predicted"] for b in bins])
    observed = np.array([b["observed"] for b in bins])
    low = np.array([b["observed_low"] for b in bins])
    high = np.array([b["observed_high"] for b in bins])
    floor = 1e-6  # an observed share of 0 is drawn here, on the log axis
    shown = np.clip(observed, floor, 1)
    errors = np.vstack([shown - np.clip(low, floor, 1), np.clip(high, floor, 1) - shown])
    axes.errorbar(predicted, shown, yerr=np.clip(errors, 0, None), fmt="o", capsize=3,
                  label="observed fraud share, 95 % interval")  # fmt: skip
    for bin_, x, y in zip(bins, predicted, shown, strict=True):
        axes.annotate(f"{bin_['frauds']}/{bin_['rows']}", (x, y), textcoords="offset points",
                      xytext=(4, -10), fontsize="x-small")  # fmt: skip
    axes.plot([floor, 1], [floor, 1], linestyle=":", color="grey", label="perfect calibration")
    axes.set(xscale="log", yscale="log", xlim=(floor, 1), ylim=(floor, 1),
             xlabel="mean served fraud_probability in the bin",
             ylabel="fraud share (production weights)",
             title="Reliability (test split; frauds/rows per bin)")  # fmt: skip
    axes.legend(fontsize="small", loc="upper left")
    return _png(figure)


def _importances(importances: np.ndarray, label: str, top: int = 15) -> bytes:
    order = np.argsort(importances)[-top:]
    figure, axes = _figure()
    axes.barh([FEATURE_NAMES[i] for i in order], importances[order])
    axes.set(xlabel=label, title=f"Top {top} feature importances")
    return _png(figure)
