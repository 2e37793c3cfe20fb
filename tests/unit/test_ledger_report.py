"""The realized-performance report against an offline computation on the same synthetic truth."""

import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest

from benchmarks.ledger_data import Truth, synthetic_ledger
from ledger.files import LedgerFileExistsError
from ledger.report import (
    RealizedReport,
    ReportSettings,
    clopper_pearson,
    main,
    realized_report,
)

START = date(2026, 1, 5)  # a Monday: four whole weeks
# The first three weeks are 120 days old, the last is not.
AS_OF = START + timedelta(days=21 + 126)
SETTINGS = ReportSettings(review_cost=5.0, maturity_days=120)


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Truth]:
    uri = str(tmp_path_factory.mktemp("ledger"))
    return uri, synthetic_ledger(uri, start=START, days=28, per_day=300, seed=3)


@pytest.fixture(scope="module")
def report(ledger: tuple[str, Truth]) -> RealizedReport:
    return realized_report(ledger[0], SETTINGS, as_of=AS_OF)


def week_of(days: np.ndarray) -> np.ndarray:
    """The Monday of each day (1970-01-01 was a Thursday)."""
    return days - ((days.astype(np.int64) + 3) % 7).astype("timedelta64[D]")


def test_clopper_pearson_is_exact_and_never_a_point() -> None:
    assert clopper_pearson(0, 10, 0.95) == pytest.approx((0.0, 1 - 0.025 ** (1 / 10)))
    assert clopper_pearson(10, 10, 0.95) == pytest.approx((0.025 ** (1 / 10), 1.0))
    low, high = clopper_pearson(3, 1_000, 0.95)  # type: ignore[misc]
    assert 0 < low < 0.003 < high < 0.01
    assert clopper_pearson(0, 0, 0.95) is None


def test_every_week_of_every_version_matches_the_offline_computation(
    ledger: tuple[str, Truth], report: RealizedReport
) -> None:
    _, truth = ledger
    weeks = week_of(truth.days)
    rows = {(r.model_version, r.week): r for r in report.versions if r.week is not None}
    assert len(rows) == 4
    for (version, week), row in rows.items():
        mine = (truth.versions == version) & (weeks == np.datetime64(week))
        n, flagged, fraud = mine.sum(), truth.flagged & mine, truth.fraud & mine
        assert row.transactions == n
        assert (row.alert_rate.successes, row.alert_rate.trials) == (flagged.sum(), n)
        # Every alert was reviewed: realized precision is the true precision of the alerts.
        assert (row.precision.successes, row.precision.trials) == (
            (flagged & fraud).sum(), flagged.sum()
        )  # fmt: skip
        assert row.chargebacks == (fraud & ~flagged).sum()  # a tenth were sent twice: once
        assert row.mature == (week + timedelta(days=127) <= AS_OF)
        if not row.mature:
            assert row.recall is None and row.cost is None
            continue
        assert row.recall is not None and row.cost is not None
        assert (row.recall.successes, row.recall.trials) == ((flagged & fraud).sum(), fraud.sum())
        assert row.amount_caught == pytest.approx(truth.amounts[flagged & fraud].sum())
        cost = (5.0 * flagged.sum() + truth.amounts[fraud & ~flagged].sum()) / n
        assert row.cost.value == pytest.approx(cost)
        assert row.cost.interval[0] < cost < row.cost.interval[1]
    assert report.immature_weeks == [START + timedelta(days=21)]


def test_champion_and_challenger_are_compared_on_the_same_transactions(
    ledger: tuple[str, Truth], report: RealizedReport
) -> None:
    _, truth = ledger
    mature = week_of(truth.days) < np.datetime64(START + timedelta(days=21))
    for pair in report.pairs:
        both = truth.shadowed & (truth.versions == pair.champion_version)
        assert pair.challenger_version == "c1"
        assert pair.transactions == both.sum()
        assert pair.champion_alert_rate.successes == (truth.flagged & both).sum()
        assert pair.challenger_alert_rate.successes == (truth.challenger_flagged & both).sum()
        ripe = both & mature
        frauds = truth.fraud & ripe
        assert pair.mature_transactions == ripe.sum()
        assert pair.champion_recall is not None and pair.challenger_recall is not None
        assert pair.champion_recall.successes == (frauds & truth.flagged).sum()
        assert pair.challenger_recall.successes == (frauds & truth.challenger_flagged).sum()
        assert pair.champion_recall.trials == pair.challenger_recall.trials == frauds.sum()
        only = frauds & truth.challenger_flagged & ~truth.flagged
        assert pair.only_challenger_caught == only.sum()
    assert {pair.champion_version for pair in report.pairs} == {"v1", "v2"}


def test_the_version_totals_take_recall_from_mature_weeks_only(report: RealizedReport) -> None:
    totals = {r.model_version: r for r in report.versions if r.week is None}
    weekly = [r for r in report.versions if r.week is not None]
    for version, total in totals.items():
        mine = [r for r in weekly if r.model_version == version]
        assert total.transactions == sum(r.transactions for r in mine)
        assert total.recall is not None
        assert total.recall.trials == sum(r.recall.trials for r in mine if r.recall is not None)


def test_the_command_writes_markdown_json_and_plots_once(
    ledger: tuple[str, Truth], report: RealizedReport, tmp_path: Path
) -> None:
    out = tmp_path / "report"
    args = ["--ledger", ledger[0], "--out", str(out), "--as-of", AS_OF.isoformat()]
    assert main(args) == 0
    names = sorted(path.name for path in out.iterdir())
    assert names == ["alert_rate.png", "champion_challenger.png", "precision.png",
                     "report.json", "report.md"]  # fmt: skip
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = (out / "report.md").read_text()
    assert f"**Not yet mature** (recall, amounts and cost not given): weeks of {report_week()}" in (
        markdown
    )
    assert "![Alert rate per week" in markdown
    written = RealizedReport.model_validate(json.loads((out / "report.json").read_text()))
    assert written == report
    with pytest.raises(LedgerFileExistsError):
        main(args)  # a report is never replaced


def report_week() -> str:
    return (START + timedelta(days=21)).isoformat()


def test_an_empty_ledger_gives_an_empty_report(tmp_path: Path) -> None:
    report = realized_report(str(tmp_path), SETTINGS, as_of=AS_OF)
    assert (report.versions, report.pairs, report.immature_weeks) == ([], [], [])


def test_with_ray_the_command_keeps_ray_s_workers_off_uv_before_ray_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Run under `uv run` (as the README's commands are), Ray would start every worker of the
    # cluster through uv, which fails on a cluster's nodes: the command sets the workers'
    # environment before the Ray counting imports Ray.
    import os

    from fraud_model.ray_env import THIS_VENV_FOR_RAY_WORKERS
    from ledger import report as report_module

    for name in THIS_VENV_FOR_RAY_WORKERS:
        monkeypatch.delenv(name, raising=False)
    seen: dict[str, str | None] = {}

    def counted(*args: object, use_ray: bool, **kwargs: object) -> RealizedReport:
        seen.update({name: os.environ.get(name) for name in THIS_VENV_FOR_RAY_WORKERS})
        return realized_report(str(tmp_path / "empty"), SETTINGS, as_of=AS_OF)

    monkeypatch.setattr(report_module, "realized_report", counted)
    assert main(["--ledger", str(tmp_path), "--out", str(tmp_path / "out"), "--ray"]) == 0
    assert seen == THIS_VENV_FOR_RAY_WORKERS
