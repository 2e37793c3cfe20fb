"""The fleet-wide drift recording rules of k8s/monitoring.yaml, evaluated by Prometheus's own
rule engine (`promtool test rules`) on replicas' counters, against the service's PSI function."""

import math
import os
import shutil
import subprocess

import numpy as np
import pytest
import yaml

from fraud_model.drift import PSI_EPSILON, population_stability_index
from serve_app.model import FLEET_PSI_RULE, ScoreDrift
from tests.helpers import PROJECT_ROOT

PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(
    PROMTOOL is None and os.environ.get("CI") != "true",
    reason="promtool is not installed (apt-get install prometheus); CI installs it",
)

REFERENCE = [0.7, 0.1, 0.15, 0.05, 0.0]  # an empty reference bin counts as 1e-4
MINUTES = 60
# Prometheus and numpy sum in different orders: compare to 1e-9, as PromQL's round() does it.
PRECISION = 1e-9


def rounded(value: float) -> float:
    inverse = 1.0 / PRECISION
    return math.floor(value * inverse + 0.5) / inverse


def drift_rules() -> dict:
    docs = yaml.safe_load_all((PROJECT_ROOT / "k8s" / "monitoring.yaml").read_text())
    (rule,) = [doc for doc in docs if doc["metadata"]["name"] == "fraud-scoring-drift"]
    return {"groups": rule["spec"]["groups"]}


def series(per_minute_by_replica: list[list[int]], version: str) -> list[dict]:
    """Counters and reference gauges of replicas that score steadily for an hour: replica r
    adds per_minute[r][bin] scores to each bin every minute (a bin it never saw is absent)."""
    inputs = []
    for replica, per_minute in enumerate(per_minute_by_replica):
        labels = f'model_version="{version}", replica="r{replica}"'
        for index, rate in enumerate(per_minute):
            if rate:
                inputs.append({
                    "series": f'ray_fraud_score_drift_bin_total{{{labels}, bin="{index}"}}',
                    "values": f"0+{rate}x{MINUTES}",
                })  # fmt: skip
        for index, share in enumerate(REFERENCE):
            inputs.append({
                "series": f'ray_fraud_score_reference_share{{{labels}, bin="{index}"}}',
                "values": f"{share}x{MINUTES}",
            })  # fmt: skip
    return inputs


def run_promtool(tmp_path, inputs: list[dict], expected: list[dict]) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(drift_rules()))
    test = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": inputs,
            "promql_expr_test": [
                {"expr": f"round({FLEET_PSI_RULE}, {PRECISION})", "eval_time": f"{MINUTES}m",
                 "exp_samples": [sample | {"value": rounded(sample["value"])}
                                 for sample in expected]}
            ],
        }],
    }  # fmt: skip
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(test))
    assert PROMTOOL is not None, "promtool is not installed (apt-get install prometheus)"
    run = subprocess.run(
        [PROMTOOL, "test", "rules", "test.yaml"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_rules_use_the_service_s_minimum_and_empty_bin_share() -> None:
    (group,) = drift_rules()["groups"]
    rules = {rule["record"]: rule["expr"] for rule in group["rules"]}
    assert f">= {ScoreDrift.MIN_SCORES})" in rules["fraud:score_live_share:1h"]
    assert PSI_EPSILON == 1e-4
    assert "1e-4" in rules["fraud:score_live_share:1h"]
    assert "1e-4" in rules["fraud:score_reference_share"]


def test_fleet_psi_adds_up_every_replica_and_matches_the_service_s_psi(tmp_path) -> None:
    # Two replicas that disagree: alone, each would report another PSI.
    replicas = [[6, 1, 1, 0, 0], [2, 1, 3, 2, 0]]
    hour = np.sum(replicas, axis=0) * MINUTES
    expected = population_stability_index(REFERENCE, hour)
    assert expected != pytest.approx(
        population_stability_index(REFERENCE, np.asarray(replicas[0]) * MINUTES)
    )
    run_promtool(
        tmp_path,
        series(replicas, "v1") + series([[7, 1, 2, 0, 0]], "v2"),
        [
            {"labels": '{model_version="v1"}', "value": expected},
            {"labels": '{model_version="v2"}',
             "value": population_stability_index(REFERENCE, np.array([7, 1, 2, 0, 0]) * MINUTES)},
        ],
    )  # fmt: skip


def test_a_version_with_too_few_scores_in_the_hour_has_no_psi(tmp_path) -> None:
    # 3 scores a minute: 180 in the hour, under the 200 a PSI needs; v2 has enough.
    run_promtool(
        tmp_path,
        series([[2, 1, 0, 0, 0]], "v1") + series([[3, 1, 0, 0, 0]], "v2"),
        [{"labels": '{model_version="v2"}',
          "value": population_stability_index(REFERENCE, np.array([3, 1, 0, 0, 0]) * MINUTES)}],
    )  # fmt: skip
