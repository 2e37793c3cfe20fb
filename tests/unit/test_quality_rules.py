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


def predictions(
    version: str, legit: list[int], fraud: list[int], deployment: str = "FraudModel"
) -> list[dict]:
    labels = f'deployment="{deployment}", model_version="{version}", replica="r1"'
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


def test_the_band_and_its_alert_for_four_versions_at_once(tmp_path: Path) -> None:
    """The alert rate's band and its alert, on four model versions side by side in one run of
    Prometheus's rule engine (a day and two hours of samples; each run takes seconds):
    - `steady`: 1,000 transactions a minute at 0.3 % (from the model and the Ingress replicas;
      its Challenger's decisions left out), the band equal to the formula, no alert;
    - `jump`: the same day, then 0.8 % in the last hour: out of the band, firing 15 minutes after
      it left it (not yet 10 minutes after the jump);
    - `drop`: the same day, then no alerts at all in the last hour: firing too;
    - `quiet`: 20 transactions a minute at 0.5 %, then 25 %: 6 alerts expected in the hour,
      under the 10 the band needs, so nothing fires however large the jump.
    Each version's series and checks are its own: what one version does cannot make another's
    alert fire (the rules work `by (model_version)`)."""
    p0, n = 3 / 1000, 60 * 1000
    half = 3 * math.sqrt(p0 * (1 - p0) / n)
    quiet_fraud = [1 if minute % 10 == 0 else 0 for minute in range(JUMP_AT)] + [5] * 60
    inputs = (
        # `steady`'s decisions come from the model replicas (batches) and the Ingress replicas
        # (single transactions): both count. Its Challenger's, at another rate, do not.
        predictions("steady", *steady_then(600, 2, 2))
        + predictions("steady", *steady_then(400, 1, 1), deployment="Ingress")
        + predictions("steady", *steady_then(1000, 500, 500), deployment="Challenger")
        + predictions("jump", *steady_then(1000, 3, 8))
        + predictions("drop", *steady_then(1000, 3, 0))
        + predictions("quiet", [20 - f for f in quiet_fraud], quiet_fraud)
    )
    band = [
        {"expr": f'round({name}{{model_version="steady"}}, 1e-9)', "eval_time": f"{DAY_AND_2H}m",
         "exp_samples": [{"labels": '{model_version="steady"}', "value": as_promql_rounds(value)}]}
        for name, value in (("fraud:alert_rate:baseline", p0), ("fraud:alert_rate:1h", p0),
                            ("fraud:alert_rate:upper", p0 + half),
                            ("fraud:alert_rate:lower", p0 - half))
    ]  # fmt: skip
    alert = "FraudAlertRateOutOfBand"
    checks = [
        *band,
        firing(alert, JUMP_AT + 10, []),  # the jump has not left the band for 15 minutes yet
        firing(
            alert,
            DAY_AND_2H,
            [(f', model_version="{version}"', "warning") for version in ("drop", "jump")],
        ),
    ]
    promtool(tmp_path, inputs, checks)


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
