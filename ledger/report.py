"""The realized-performance report: how each model version's decisions turned out, per week.

    python -m ledger.report --ledger s3://bucket/ledger --out reports/2026-12-01
    python -m ledger.report --ledger ... --out ... --ray     # the counting as Ray tasks

From the `decisions` joined with the `outcomes` (ledger.counts): per model version and week, the
volume, the alert rate, the realized precision of alerts (from reviews), and for weeks older than
the maturity window (chargebacks arrive up to 120 days late) the recall, the fraud amount caught
and the cost per transaction; and champion against challenger on the same transactions. Every
rate has an exact (Clopper-Pearson) interval. Writes report.md, report.json and PNG plots.
DuckDB computes; the decisions are read as Arrow data through pyarrow's file systems, so s3://
needs no DuckDB extension.
"""

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from fraud_model.ray_env import use_this_venv_for_ray_workers
from ledger.counts import PAIR_KEYS, VERSION_KEYS, labels, merge, partial_counts
from ledger.files import LedgerFiles, open_files, table_dataset
from ledger.schema import DECISIONS, OUTCOMES
from ledger.settings import LedgerSettings

REPORT_FILE, JSON_FILE = "report.md", "report.json"


class ReportSettings(BaseModel):
    """What the report assumes: costs, the maturity window, the interval level."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    review_cost: float = Field(
        5.0, ge=0, description="The cost of reviewing one alert (the unit of Amount)."
    )
    maturity_days: int = Field(
        120, ge=0, description="A week's recall and cost are given once it ended this long ago."
    )
    level: float = Field(0.95, gt=0, lt=1, description="The intervals' confidence level.")


Interval = tuple[float, float]


def clopper_pearson(successes: int, trials: int, level: float) -> Interval | None:
    """The exact binomial interval; never a single point (None without trials)."""
    from scipy.stats import beta

    if trials == 0:
        return None
    tail = (1 - level) / 2
    low = 0.0 if successes == 0 else float(beta.ppf(tail, successes, trials - successes + 1))
    high = (
        1.0 if successes == trials else float(beta.ppf(1 - tail, successes + 1, trials - successes))
    )
    return low, high


class Rate(BaseModel):
    successes: int
    trials: int
    value: float | None
    interval: Interval | None

    @classmethod
    def of(cls, successes: int, trials: int, level: float) -> "Rate":
        return cls(
            successes=successes,
            trials=trials,
            value=successes / trials if trials else None,
            interval=clopper_pearson(successes, trials, level),
        )


class Cost(BaseModel):
    """Cost per transaction: review_cost per alert plus the amount of every fraud missed."""

    value: float
    interval: Interval


def cost_per_transaction(
    transactions: int, alerts: int, missed: int, missed_cents: int, mean_fraud_cents: float,
    settings: ReportSettings,
) -> Cost:  # fmt: skip
    """The interval is conservative: exact (Clopper-Pearson) on the alert count and on the
    missed-fraud count, each at half the error, with the missed frauds' mean amount as observed
    (the mean amount of all frauds when none was missed)."""
    half = ReportSettings(**(settings.model_dump() | {"level": 1 - (1 - settings.level) / 2}))
    alerts_low, alerts_high = clopper_pearson(alerts, transactions, half.level) or (0.0, 1.0)
    missed_low, missed_high = clopper_pearson(missed, transactions, half.level) or (0.0, 1.0)
    mean_missed = missed_cents / missed / 100 if missed else mean_fraud_cents / 100
    value = (settings.review_cost * alerts + missed_cents / 100) / transactions
    return Cost(
        value=value,
        interval=(
            settings.review_cost * alerts_low + missed_low * mean_missed,
            settings.review_cost * alerts_high + missed_high * mean_missed,
        ),
    )


class VersionWeek(BaseModel):
    model_version: str
    week: date | None  # None: every week together (recall and cost: the mature ones)
    mature: bool
    transactions: int
    alert_rate: Rate
    precision: Rate  # of alerts, from reviews
    chargebacks: int
    recall: Rate | None  # mature weeks only
    amount_caught: float | None
    fraud_amount: float | None
    cost: Cost | None


class PairSummary(BaseModel):
    champion_version: str
    challenger_version: str
    transactions: int
    mature_transactions: int
    champion_alert_rate: Rate
    challenger_alert_rate: Rate
    agreement: Rate
    champion_recall: Rate | None
    challenger_recall: Rate | None
    only_champion_caught: int
    only_challenger_caught: int
    discordant_p_value: float | None  # exact two-sided binomial (McNemar) on the two above
    champion_amount_caught: float | None
    challenger_amount_caught: float | None
    champion_cost: Cost | None
    challenger_cost: Cost | None


class RealizedReport(BaseModel):
    ledger: str
    as_of: date
    settings: ReportSettings
    versions: list[VersionWeek]
    pairs: list[PairSummary]
    immature_weeks: list[date]


def mature(week: date, as_of: date, settings: ReportSettings) -> bool:
    return week + timedelta(days=7 + settings.maturity_days) <= as_of


def build(
    versions: pa.Table, pairs: pa.Table, ledger: str, as_of: date, settings: ReportSettings
) -> RealizedReport:
    """The report from merged counts: the same counts give the same report, however split."""
    version_rows = versions.to_pylist() if versions.num_rows else []
    pair_rows = pairs.to_pylist() if pairs.num_rows else []
    weeks = [
        _version_week(row, row["week"], mature(row["week"], as_of, settings), settings)
        for row in version_rows
    ]
    totals = []
    for version in sorted({row["model_version"] for row in version_rows}):
        rows = [row for row in version_rows if row["model_version"] == version]
        ripe = [row for row in rows if mature(row["week"], as_of, settings)]
        total = _sum(rows, VERSION_KEYS) | {"model_version": version}
        for name in ("frauds", "frauds_flagged", "fraud_cents", "caught_cents"):
            total[name] = sum(row[name] for row in ripe)
        total["mature_transactions"] = sum(row["transactions"] for row in ripe)
        total["mature_alerts"] = sum(row["alerts"] for row in ripe)
        totals.append(_version_week(total, None, bool(ripe), settings))
    summaries = []
    for key in sorted({(row["champion_version"], row["challenger_version"]) for row in pair_rows}):
        rows = [r for r in pair_rows if (r["champion_version"], r["challenger_version"]) == key]
        ripe = [row for row in rows if mature(row["week"], as_of, settings)]
        summaries.append(_pair(key, _sum(rows, PAIR_KEYS), _sum(ripe, PAIR_KEYS), settings))
    return RealizedReport(
        ledger=ledger,
        as_of=as_of,
        settings=settings,
        versions=totals + weeks,
        pairs=summaries,
        immature_weeks=sorted(
            {row["week"] for row in version_rows if not mature(row["week"], as_of, settings)}
        ),
    )


def _sum(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[str, Any]:
    names = [name for name in (rows[0] if rows else {}) if name not in keys]
    return {name: sum(row[name] for row in rows) for name in names}


def _version_week(
    row: dict[str, Any], week: date | None, ripe: bool, settings: ReportSettings
) -> VersionWeek:
    level = settings.level
    transactions = row.get("mature_transactions", row["transactions"])
    alerts = row.get("mature_alerts", row["alerts"])
    return VersionWeek(
        model_version=row["model_version"],
        week=week,
        mature=ripe,
        transactions=row["transactions"],
        alert_rate=Rate.of(row["alerts"], row["transactions"], level),
        precision=Rate.of(row["confirmed_alerts"], row["reviewed_alerts"], level),
        chargebacks=row["chargebacks"],
        recall=Rate.of(row["frauds_flagged"], row["frauds"], level) if ripe else None,
        amount_caught=row["caught_cents"] / 100 if ripe else None,
        fraud_amount=row["fraud_cents"] / 100 if ripe else None,
        cost=cost_per_transaction(
            transactions, alerts, row["frauds"] - row["frauds_flagged"],
            row["fraud_cents"] - row["caught_cents"], _mean(row["fraud_cents"], row["frauds"]),
            settings,
        ) if ripe and transactions else None,
    )  # fmt: skip


def _mean(cents: int, count: int) -> float:
    return cents / count if count else 0.0


def _pair(
    key: tuple[str, str], every: dict[str, Any], ripe: dict[str, Any], settings: ReportSettings
) -> PairSummary:
    from scipy.stats import binomtest

    level, n = settings.level, every["transactions"]
    agree = n - every["champion_alerts"] - every["challenger_alerts"] + 2 * every["both_flag"]
    mature_n = ripe.get("transactions", 0)
    only = (ripe.get("only_champion_caught", 0), ripe.get("only_challenger_caught", 0))
    mean = _mean(ripe.get("fraud_cents", 0), ripe.get("frauds", 0))

    def model(side: str) -> tuple[Rate | None, float | None, Cost | None]:
        if not mature_n:
            return None, None, None
        caught, frauds = ripe[f"{side}_caught"], ripe["frauds"]
        missed_cents = ripe["fraud_cents"] - ripe[f"{side}_caught_cents"]
        return (
            Rate.of(caught, frauds, level),
            ripe[f"{side}_caught_cents"] / 100,
            cost_per_transaction(mature_n, ripe[f"{side}_alerts"], frauds - caught,
                                 missed_cents, mean, settings),
        )  # fmt: skip

    champion, challenger = model("champion"), model("challenger")
    return PairSummary(
        champion_version=key[0],
        challenger_version=key[1],
        transactions=n,
        mature_transactions=mature_n,
        champion_alert_rate=Rate.of(every["champion_alerts"], n, level),
        challenger_alert_rate=Rate.of(every["challenger_alerts"], n, level),
        agreement=Rate.of(agree, n, level),
        champion_recall=champion[0],
        challenger_recall=challenger[0],
        only_champion_caught=only[0],
        only_challenger_caught=only[1],
        discordant_p_value=binomtest(only[0], sum(only)).pvalue if sum(only) else None,
        champion_amount_caught=champion[1],
        challenger_amount_caught=challenger[1],
        champion_cost=champion[2],
        challenger_cost=challenger[2],
    )


# Counting over the ledger, in this process.


def read_labels(files: LedgerFiles) -> pa.Table:
    return labels(table_dataset(files, OUTCOMES))


def count_locally(files: LedgerFiles) -> tuple[pa.Table, pa.Table]:
    """(versions, pairs) counts of the whole ledger, in one DuckDB query each."""
    versions, pairs = partial_counts(table_dataset(files, DECISIONS), read_labels(files))
    return merge([versions], VERSION_KEYS), merge([pairs], PAIR_KEYS)


def realized_report(
    ledger: str,
    settings: ReportSettings | None = None,
    *,
    as_of: date | None = None,
    use_ray: bool = False,
) -> RealizedReport:
    settings = settings if settings is not None else ReportSettings()
    files = open_files(ledger)
    if use_ray:
        from ledger.report_ray import count_with_ray

        versions, pairs = count_with_ray(ledger)
    else:
        versions, pairs = count_locally(files)
    today = as_of if as_of is not None else datetime.now(UTC).date()
    return build(versions, pairs, files.uri, today, settings)


# Writing it out.


def markdown(report: RealizedReport, plots: dict[str, str]) -> str:
    s = report.settings
    pct = round(s.level * 100)
    lines = [
        "# Realized performance",
        "",
        f"Ledger `{report.ledger}`, as of {report.as_of}. Review cost {s.review_cost:g} per "
        f"alert, a missed fraud costs its Amount; recall, amounts and cost only for weeks that "
        f"ended {s.maturity_days} days or more before {report.as_of}. Intervals: exact "
        f"(Clopper-Pearson) {pct} %; the cost's is conservative (docs/LEDGER.md).",
        "",
    ]
    if report.immature_weeks:
        weeks = ", ".join(str(week) for week in report.immature_weeks)
        lines += [f"**Not yet mature** (recall, amounts and cost not given): weeks of {weeks}.", ""]
    lines += [
        "## Per model version",
        "",
        "| model version | week | transactions | alert rate | precision (reviewed alerts) "
        "| chargebacks | recall | amount caught / fraud amount | cost per transaction |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in report.versions:
        week = "all (mature for recall, cost)" if row.week is None else str(row.week)
        amounts = (
            f"{row.amount_caught:,.2f} / {row.fraud_amount:,.2f}"
            if row.amount_caught is not None and row.fraud_amount is not None
            else "not mature"
        )
        lines.append(
            f"| {row.model_version} | {week} | {row.transactions:,} | {_rate(row.alert_rate)} "
            f"| {_rate(row.precision)} | {row.chargebacks:,} | "
            f"{_rate(row.recall) if row.recall else 'not mature'} | {amounts} | "
            f"{_cost(row.cost)} |"
        )
    if report.pairs:
        lines += [
            "",
            "## Champion against challenger, on the same transactions",
            "",
            "| champion | challenger | transactions (mature) | alert rate | agreement | recall "
            "| frauds caught by one only | amount caught | cost per transaction |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for pair in report.pairs:
            p = "" if pair.discordant_p_value is None else f", p = {pair.discordant_p_value:.3g}"
            lines.append(
                f"| {pair.champion_version} | {pair.challenger_version} | "
                f"{pair.transactions:,} ({pair.mature_transactions:,}) | "
                f"{_rate(pair.champion_alert_rate)} vs {_rate(pair.challenger_alert_rate)} | "
                f"{_rate(pair.agreement)} | {_rate(pair.champion_recall)} vs "
                f"{_rate(pair.challenger_recall)} | {pair.only_champion_caught} vs "
                f"{pair.only_challenger_caught}{p} | {_money(pair.champion_amount_caught)} vs "
                f"{_money(pair.challenger_amount_caught)} | {_cost(pair.champion_cost)} vs "
                f"{_cost(pair.challenger_cost)} |"
            )
    for name, caption in plots.items():
        lines += ["", f"![{caption}]({name})"]
    return "\n".join(lines) + "\n"


def _rate(rate: Rate | None) -> str:
    if rate is None or rate.value is None or rate.interval is None:
        return "-"
    low, high = rate.interval
    return f"{rate.value:.4g} [{low:.4g}, {high:.4g}] ({rate.successes:,}/{rate.trials:,})"


def _cost(cost: Cost | None) -> str:
    if cost is None:
        return "not mature"
    return f"{cost.value:.4g} [{cost.interval[0]:.4g}, {cost.interval[1]:.4g}]"


def _money(value: float | None) -> str:
    return "not mature" if value is None else f"{value:,.2f}"


def write_report(report: RealizedReport, out: str) -> list[str]:
    """report.md, report.json and the plots under `out` (a directory or s3://), each written
    once: an existing report is never replaced. Returns the names written."""
    from ledger.plots import draw

    files = open_files(out)
    pictures = draw(report)
    captions = {name: caption for name, (caption, _) in pictures.items()}
    contents = {name: png for name, (_, png) in pictures.items()}
    contents[JSON_FILE] = report.model_dump_json(indent=2).encode()
    contents[REPORT_FILE] = markdown(report, captions).encode()
    for name, data in contents.items():
        files.put_new(name, data)
    return list(contents)


def arguments() -> argparse.ArgumentParser:
    defaults = ReportSettings()
    parser = argparse.ArgumentParser(prog="python -m ledger.report", description=__doc__)
    parser.add_argument("--ledger", default=LedgerSettings().location, help="the ledger's URI")
    parser.add_argument("--out", required=True, help="where the report goes (a new directory)")
    parser.add_argument("--as-of", type=date.fromisoformat, help="the report's day (today)")
    parser.add_argument("--maturity-days", type=int, default=defaults.maturity_days,
                        help=ReportSettings.model_fields["maturity_days"].description)  # fmt: skip
    parser.add_argument("--review-cost", type=float, default=defaults.review_cost,
                        help=ReportSettings.model_fields["review_cost"].description)  # fmt: skip
    parser.add_argument("--ray", action="store_true", help="count in Ray tasks, one per day")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = arguments().parse_args(argv)
    if args.ray:
        # Before Ray is imported: run under `uv run`, Ray would otherwise start every worker of
        # the cluster through uv, which the cluster's nodes do not have where this project is.
        use_this_venv_for_ray_workers()
    settings = ReportSettings(maturity_days=args.maturity_days, review_cost=args.review_cost)
    report = realized_report(args.ledger, settings, as_of=args.as_of, use_ray=args.ray)
    names = write_report(report, args.out)
    sys.stdout.write(f"Wrote {', '.join(names)} to {args.out}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
