"""The realized-performance report's plots, as PNG bytes.

Drawn on matplotlib Figures with the Agg canvas (no pyplot, no global backend, nothing left
open); matplotlib is imported only when a report is drawn.
"""

import io
from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING

from ledger.report import Rate, RealizedReport

if TYPE_CHECKING:
    from matplotlib.axes import Axes

EPOCH = date(1970, 1, 1)
PLOTS = {
    "alert_rate.png": "Alert rate per week and model version, with exact intervals",
    "precision.png": "Realized precision of alerts (reviews) per week, with exact intervals",
    "champion_challenger.png": "Champion against challenger on the same transactions: alert "
    "rate and recall (mature weeks), with exact intervals",
}


def draw(report: RealizedReport) -> dict[str, tuple[str, bytes]]:
    """Plot file name -> (caption, PNG); plots with nothing to show are left out."""
    weekly = [row for row in report.versions if row.week is not None]
    drawn: dict[str, tuple[str, bytes]] = {}
    if weekly:
        drawn["alert_rate.png"] = (PLOTS["alert_rate.png"], _png(
            lambda axes: _over_time(axes, report, "alert_rate", "alert rate")))  # fmt: skip
    if any(row.precision.trials for row in weekly):
        drawn["precision.png"] = (PLOTS["precision.png"], _png(
            lambda axes: _over_time(axes, report, "precision", "precision of alerts")))  # fmt: skip
    if report.pairs:
        drawn["champion_challenger.png"] = (
            PLOTS["champion_challenger.png"], _png(lambda axes: _pairs(axes, report)))  # fmt: skip
    return drawn


def _png(plot: Callable[["Axes"], None]) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.0, 4.2), dpi=100)
    FigureCanvasAgg(figure)
    plot(figure.subplots())
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()


def _error_bars(rates: list[Rate]) -> tuple[list[float], list[list[float]]]:
    values, low, high = [], [], []
    for rate in rates:
        value = rate.value if rate.value is not None else float("nan")
        interval = rate.interval or (value, value)
        values.append(value)
        low.append(value - interval[0])
        high.append(interval[1] - value)
    return values, [low, high]


def _over_time(axes: "Axes", report: RealizedReport, field: str, label: str) -> None:
    versions = sorted({row.model_version for row in report.versions})
    for version in versions:
        rows = [r for r in report.versions if r.model_version == version and r.week is not None]
        rows = [r for r in rows if getattr(r, field).trials]
        # matplotlib's dates are days since its epoch, 1970-01-01
        weeks = [(r.week - EPOCH).days for r in rows if r.week is not None]
        values, errors = _error_bars([getattr(r, field) for r in rows])
        axes.errorbar(weeks, values, yerr=errors, marker="o", capsize=3, label=version)
    axes.xaxis_date()
    axes.set(xlabel="week (Monday, UTC)", ylabel=label, title=f"{label} per week")
    axes.legend(title="model version", fontsize="small")
    axes.tick_params(axis="x", labelrotation=30)


def _pairs(axes: "Axes", report: RealizedReport) -> None:
    names, rates, colours = [], [], []
    for pair in report.pairs:
        tag = f"{pair.challenger_version[-8:]} vs {pair.champion_version[-8:]}"
        for metric, champion, challenger in (
            ("alert rate", pair.champion_alert_rate, pair.challenger_alert_rate),
            ("recall", pair.champion_recall, pair.challenger_recall),
        ):
            for role, rate, colour in (("champion", champion, "C0"), ("challenger", challenger,
                                                                       "C1")):  # fmt: skip
                if rate is not None and rate.trials:
                    names.append(f"{metric}\n{role}\n{tag}")
                    rates.append(rate)
                    colours.append(colour)
    values, errors = _error_bars(rates)
    axes.bar(range(len(values)), values, yerr=errors, capsize=4, color=colours)
    axes.set_xticks(range(len(values)), names, fontsize="x-small")
    axes.set(ylabel="rate", title="Champion (blue) against challenger (orange)")
