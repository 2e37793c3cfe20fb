"""The live quality rules of k8s/monitoring.yaml (the alert rate's control band, the ledger's
alerts), evaluated by Prometheus's own rule engine (`promtool test rules`)."""

import math
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.helpers import PROJECT_ROOT

PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(
    PROMTOOL is None and os.environ.get("CI") != "true",
    reason="promtool is not installed (apt-get install prometheus); CI installs it",
)
DAY_AND_2H = 26 * 60  # minutes: a day of baseline, its hour's offset, and the hour watched
JUMP_AT = DAY_AND_2H - 60  # the last hour may differ


def quality_rules() -> dict:
    docs = yaml.safe_load_all((PROJECT_ROOT / "k8s" / "monitoring.yaml").read_text())
    (rule,) = [doc for doc in docs if doc["metadata"]["name"] == "fraud-scoring-quality"]
    return {"groups": rule["spec"]["groups"]}


def counter(per_minute: list[int]) -> str:
    """promtool's notation for a counter that grows by per_minute[i] in minute i."""
    values, total = ["0"], 0
    for step in per_minute:
        total += step
        values.append(str(total))
    return " ".join(values)


def predictions(version: str, legit: list[int], fraud: list[int]) -> list[dict]:
    labels = f'deployment="FraudModel", model_version="{version}", replica="r1"'
    return [
        {"series": f'ray_fraud_predictions_total{{{labels}, decision="legit"}}',
         "values": counter(legit)},
        {"series": f'ray_fraud_predictions_total{{{labels}, decision="fraud"}}',
         "values": counter(fraud)},
    ]  # fmt: skip


def steady_then(per_minute: int, alerts: int, alerts_after: int) -> tuple[list[int], list[int]]:
    """`per_minute` transactions, `alerts` of them flagged, `alerts_after` in the last hour."""
    fraud = [alerts] * JUMP_AT + [alerts_after] * (DAY_AND_2H - JUMP_AT)
    return [per_minute - f for f in fraud], fraud


def promtool(tmp_path: Path, inputs: list[dict], checks: list[dict]) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(quality_rules()))
    case = {"interval": "1m", "input_series": inputs, "promql_expr_test": checks}
    test = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": [case]}
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(test))
    assert PROMTOOL is not None, "promtool is not installed (apt-get install prometheus)"
    run = subprocess.run([PROMTOOL, "test", "rules", "test.yaml"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr


def firing(alert: str, minute: int, labels: list[str]) -> dict:
    return {
        "expr": f'ALERTS{{alertname="{alert}", alertstate="firing"}}',
        "eval_time": f"{minute}m",
        "exp_samples": [{"labels": "{" + f'__name__="ALERTS", alertname="{alert}", '
                         f'alertstate="firing", severity="{severity}"' + extra + "}", "value": 1}
                        for extra, severity in labels],
    }  # fmt: skip


def as_promql_rounds(value: float) -> float:
    """round(value, 1e-9) as PromQL computes it."""
    inverse = 1.0 / 1e-9
    return math.floor(value * inverse + 0.5) / inverse


def test_the_band_is_three_binomial_deviations_around_the_day_before(tmp_path: Path) -> None:
    p0, n = 3 / 1000, 60 * 1000
    half = 3 * math.sqrt(p0 * (1 - p0) / n)
    legit, fraud = steady_then(1000, 3, 3)
    checks = [
        {"expr": f"round({name}, 1e-9)", "eval_time": f"{DAY_AND_2H}m",
         "exp_samples": [{"labels": '{model_version="v1"}', "value": as_promql_rounds(value)}]}
        for name, value in (("fraud:alert_rate:baseline", p0), ("fraud:alert_rate:1h", p0),
                            ("fraud:alert_rate:upper", p0 + half),
                            ("fraud:alert_rate:lower", p0 - half))
    ]  # fmt: skip
    promtool(tmp_path, predictions("v1", legit, fraud), checks)


def test_a_jump_in_one_version_s_alert_rate_fires_and_a_steady_one_does_not(
    tmp_path: Path,
) -> None:
    inputs = predictions("v1", *steady_then(1000, 3, 8)) + predictions(
        "v2", *steady_then(1000, 3, 3)
    )
    checks = [
        firing("FraudAlertRateOutOfBand", JUMP_AT + 10, []),  # the band is not left yet
        firing("FraudAlertRateOutOfBand", DAY_AND_2H, [(', model_version="v1"', "warning")]),
    ]
    promtool(tmp_path, inputs, checks)


def test_a_drop_to_no_alerts_fires_too(tmp_path: Path) -> None:
    checks = [firing("FraudAlertRateOutOfBand", DAY_AND_2H, [(', model_version="v1"', "warning")])]
    promtool(tmp_path, predictions("v1", *steady_then(1000, 3, 0)), checks)


def test_at_low_volume_even_a_large_jump_does_not_fire(tmp_path: Path) -> None:
    # 20 transactions a minute at 0.5 %: 6 alerts expected in the hour, under the 10 needed.
    fraud = [1 if minute % 10 == 0 else 0 for minute in range(JUMP_AT)] + [5] * 60
    legit = [20 - f for f in fraud]
    promtool(tmp_path, predictions("v1", legit, fraud),
             [firing("FraudAlertRateOutOfBand", DAY_AND_2H, [])])  # fmt: skip


def test_the_ledger_s_alerts(tmp_path: Path) -> None:
    minutes = 30
    dropped = [0] * 20 + [40] + [0] * 9  # one burst of drops at minute 21
    failing = [0] * 10 + [2] * 20  # puts failing from minute 11 on
    labels = 'deployment="Ingress", replica="i1"'
    inputs = [
        {"series": f"ray_fraud_ledger_{name}_total{{{labels}}}", "values": counter(steps)}
        for name, steps in (("dropped_records", dropped), ("write_failures", failing))
    ]
    checks = [
        firing("FraudLedgerDroppingRecords", 20, []),
        firing("FraudLedgerDroppingRecords", 22, [("", "critical")]),
        firing("FraudLedgerWritesFailing", 14, []),  # failing, not yet for 5 minutes
        firing("FraudLedgerWritesFailing", minutes, [("", "warning")]),
    ]
    promtool(tmp_path, inputs, checks)
