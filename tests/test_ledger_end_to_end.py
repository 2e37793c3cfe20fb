"""The decision ledger end to end, as a fraud team runs it: 2,000 real transactions, every fraud
of the data among them, through `fraud-serve --with-keys` (README line 1, with keys as in
production) with a challenger in shadow, one Ingress replica killed with SIGKILL mid-run, then
the true labels loaded as outcomes and the realized-performance report run over the ledger.
Every answered decision is in the ledger but those of the killed replica's last flush window,
and the report's figures are those computed offline from the same answers.

On the way, what a new user met with keys: printed once beside the ready line, anonymous access
off, `fraud-serve apply` finding the operator key by itself and saying at once what to set when
its check is refused; Ctrl-C stopping it quietly."""

import asyncio
import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import yaml

from benchmarks.servers import on_free_ports, running
from fraud_model.artifact import read_metadata
from fraud_model.features import FEATURE_NAMES
from fraud_model.ray_env import THIS_VENV_FOR_RAY_WORKERS
from serve_app.local_service import RUNNING_DIR
from tests.helpers import PROJECT_ROOT, ledger_rows, write_other_artifact
from tests.polling import wait_for
from training.data import Dataset

pytestmark = [pytest.mark.ray, pytest.mark.serve]
ROWS = 2_000
FLUSH_INTERVAL_S = 1.0
REVIEW_COST = 5.0
DATA = PROJECT_ROOT / "data" / "creditcard_real_subset.csv.gz"
READY = re.compile(r"fraud-serve is ready: (http://\S+) ")
KEYS = re.compile(r"scoring (\S+) , operator (\S+) \.")


def real_rows() -> pd.DataFrame:
    """ROWS real transactions, every fraud of the data among them."""
    data = pd.read_csv(DATA)
    frauds, legitimate = data[data["Class"] == 1], data[data["Class"] == 0]
    sample = pd.concat([frauds, legitimate.sample(ROWS - len(frauds), random_state=3)])
    return sample.sample(frac=1, random_state=4).reset_index(drop=True)


def service_config(tmp_path: Path, challenger: Path) -> tuple[Path, int, Path]:
    """The shipped config on free ports, its ledger in tmp_path (flushed every second), and a
    challenger in shadow for a fifth of the requests."""
    config = yaml.safe_load((PROJECT_ROOT / "configs" / "serve_config.yaml").read_text())
    port = on_free_ports(config)
    ledger = tmp_path / "ledger"
    (application,) = config["applications"]
    application["args"]["ledger"] = {"location": str(ledger), "flush_interval_s": FLUSH_INTERVAL_S}
    application["deployments"] = [
        entry for entry in application["deployments"] if entry["name"] != "Ingress"
    ] + [
        {"name": "Challenger", "user_config": {"artifact_uri": str(challenger)}},
        {"name": "Ingress", "user_config": {"challenger": {"mode": "shadow", "share": 0.2}}},
    ]
    path = tmp_path / "serve_config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, port, ledger


def ingress_pids(service_pid: int) -> list[int]:
    """The processes of the service's Ingress replicas (Ray names them so): in the session of
    the `serve run` that `fraud-serve` (`service_pid`) started, never another service's."""
    listing = subprocess.run(
        ["ps", "-eo", "pid,ppid,sid,args"], capture_output=True, text=True
    ).stdout.splitlines()[1:]
    rows = [line.split(None, 3) for line in listing]
    sessions = {int(pid) for pid, parent, _, _ in rows if int(parent) == service_pid}
    return [
        int(pid)
        for pid, _, session, command in rows
        if int(session) in sessions and "ServeReplica:fraud:Ingress" in command
    ]


async def replay(
    url: str, rows: pd.DataFrame, kill_after: int, service_pid: int, key: str
) -> tuple[list[dict[str, Any]], float]:
    """Every row, 16 at a time, each with its own request id; one of the service's Ingress
    replicas is killed once `kill_after` have been answered. Returns what each got, and when
    the kill was."""
    results: list[dict[str, Any]] = []
    killed_at = 0.0
    queue = list(rows.index)

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal killed_at
        while queue:
            index = queue.pop(0)
            request_id = f"e2e-{uuid.uuid4()}"
            body = {name: float(rows.at[index, name]) for name in FEATURE_NAMES}
            try:
                response = await http.post(
                    "/api/v1/predict", json=body, headers={"X-Request-ID": request_id}
                )
                status, answer = response.status_code, response.json()
            except (httpx.HTTPError, ValueError) as error:
                status, answer = type(error).__name__, {}
            results.append(
                {"index": index, "id": request_id, "status": status, "answer": answer,
                 "at": time.time()}
            )  # fmt: skip
            if len(results) == kill_after and not killed_at:
                victims = ingress_pids(service_pid)
                assert len(victims) == 2, victims  # the shipped config's two replicas
                killed_at = time.time()
                os.kill(victims[0], signal.SIGKILL)

    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, timeout=30, headers=headers) as http:
        await asyncio.gather(*(client(http) for _ in range(16)))
    return results, killed_at


def check_keys(url: str, scoring: str, operator: str) -> None:
    """Anonymous access is off; the scoring key scores, the operator key reads the model."""
    model = f"{url}/api/v1/model"
    assert httpx.get(model, timeout=30).status_code == 401
    assert httpx.get(model, headers=bearer(scoring), timeout=30).status_code == 403
    assert httpx.get(model, headers=bearer(operator), timeout=30).status_code == 200


def check_apply(fraud_serve: str, config: Path, port: int, env: dict[str, str]) -> None:
    """apply, from a shell without any key, finds the operator key of this run itself; with a
    wrong key instead, its check is refused at once, saying what to set."""
    applied = subprocess.run(
        [fraud_serve, "apply", str(config)], env=env, capture_output=True, text=True
    )
    assert applied.returncode == 0, applied.stderr[-2000:]
    assert applied.stdout.startswith("Serving ") and "Challenger " in applied.stdout
    note = RUNNING_DIR / f"{port}.json"
    assert note.stat().st_mode & 0o777 == 0o600  # it holds the operator key
    noted = json.loads(note.read_text())
    key = noted.pop("operator_key")
    note.write_text(json.dumps(noted))
    wrong = env | {"FRAUD_OPERATOR_KEYS": json.dumps(["w" * 40])}
    started = time.monotonic()
    refused = subprocess.run(
        [fraud_serve, "apply", str(config)], env=wrong, capture_output=True, text=True
    )
    assert refused.returncode == 1
    assert "401" in refused.stderr and "FRAUD_OPERATOR_KEYS" in refused.stderr
    assert "--with-keys" in refused.stderr
    assert time.monotonic() - started < 60  # said at once, not after waiting out the check
    note.write_text(json.dumps(noted | {"operator_key": key}))


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_every_answered_decision_is_in_the_ledger_and_the_report_agrees_with_it(
    tmp_path: Path, tiny_dataset: Dataset
) -> None:
    challenger = tmp_path / "challenger"
    write_other_artifact(challenger, tiny_dataset, seed=5, threshold=0.3)
    config, port, ledger = service_config(tmp_path, challenger)
    rows = real_rows()
    env = os.environ | THIS_VENV_FOR_RAY_WORKERS | {"RAY_ADDRESS": "local"}
    env = {name: value for name, value in env.items() if not name.startswith("FRAUD_")}
    fraud_serve = str(Path(sys.executable).with_name("fraud-serve"))
    url, log = f"http://127.0.0.1:{port}", tmp_path / "serve.log"
    with running([fraud_serve, "--with-keys", str(config)], env, url, 300, log) as service:
        ready = wait_for(lambda: READY.search(log.read_text()), timeout_s=30)
        keys = wait_for(lambda: KEYS.search(log.read_text()), timeout_s=30)
        assert ready and keys, log.read_text()[-3000:]
        assert ready.group(1) == url
        scoring, operator = keys.groups()
        check_keys(url, scoring, operator)
        results, killed_at = asyncio.run(
            replay(url, rows, ROWS * 2 // 5, service.session_id, scoring)
        )
        check_apply(fraud_serve, config, port, env)
    output = log.read_text()
    assert "Traceback" not in output and "failed to shut down" not in output
    assert not (RUNNING_DIR / f"{port}.json").exists()
    # Stopped with Ctrl-C: the replicas that lived wrote what they held as they stopped.
    answered = {r["id"]: r for r in results if r["status"] == 200}
    statuses: dict[Any, int] = {}
    for r in results:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1

    served = {
        row["request_id"]: row
        for row in ledger_rows(ledger)
        if row["role"] == "champion" and row["served"]
    }
    lost = [request_id for request_id in answered if request_id not in served]
    print(
        f"\n{len(results)} requests {statuses}; {len(answered) - len(lost)} of {len(answered)} "
        f"answered decisions in the ledger, {len(lost)} lost with the killed replica (answered "
        f"{min((answered[i]['at'] - killed_at for i in lost), default=0):.2f} to "
        f"{max((answered[i]['at'] - killed_at for i in lost), default=0):.2f} s from the kill)"
    )
    # Lost: only what the killed replica held, at most its last flush window before the kill.
    assert all(-FLUSH_INTERVAL_S - 1 < answered[i]["at"] - killed_at < 1 for i in lost), lost
    assert len(lost) < len(answered) / 10
    assert set(served) <= set(answered)  # nothing recorded that was not answered
    for request_id, row in served.items():
        answer = answered[request_id]["answer"]
        assert (row["score"], row["is_fraud"]) == (answer["fraud_probability"], answer["is_fraud"])
    # A fifth of them shadowed: the challenger's decision on each is in the ledger too.
    shadowed = {i for i, row in served.items() if row["mode"] == "shadow"}
    assert {row["mode"] for row in served.values()} == {None, "shadow"}
    challenger_rows = [row for row in ledger_rows(ledger) if row["role"] == "challenger"]
    assert {r["request_id"] for r in challenger_rows} <= shadowed
    assert len(challenger_rows) > len(shadowed) / 2  # shadow calls may be shed, rarely

    # The outcomes a fraud team would have: a chargeback for every fraud, an investigator's
    # review of every alert; loaded in bulk.
    labels = {r["id"]: bool(rows.at[r["index"], "Class"]) for r in answered.values()}
    reported = datetime.now(UTC).isoformat()
    outcomes = tmp_path / "outcomes.csv"
    with outcomes.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["request_id", "position", "is_fraud", "source", "reported_at"])
        for request_id, row in served.items():
            if labels[request_id]:
                writer.writerow([request_id, 0, "true", "chargeback", reported])
            if row["is_fraud"]:
                writer.writerow(
                    [request_id, 0, str(labels[request_id]).lower(), "review", reported]
                )
    python = sys.executable
    loaded = subprocess.run(
        [python, "-m", "ledger.outcomes", "load", str(outcomes), "--ledger", str(ledger)],
        capture_output=True, text=True, cwd=PROJECT_ROOT,
    )  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr
    report_dir = tmp_path / "report"
    as_of = (date.today() + timedelta(days=8)).isoformat()  # every week of the run is mature
    reported_run = subprocess.run(
        [python, "-m", "ledger.report", "--ledger", str(ledger), "--out", str(report_dir),
         "--as-of", as_of, "--maturity-days", "0", "--review-cost", str(REVIEW_COST)],
        capture_output=True, text=True, cwd=PROJECT_ROOT,
    )  # fmt: skip
    assert reported_run.returncode == 0, reported_run.stderr
    report = json.loads((report_dir / "report.json").read_text())

    # Offline, from the answers themselves: the same rows, thresholds and costs.
    version = read_metadata(PROJECT_ROOT / "artifacts" / "default").model_version
    (total,) = [v for v in report["versions"] if v["model_version"] == version and not v["week"]]
    flagged = [i for i, row in served.items() if row["is_fraud"]]
    frauds = [i for i in served if labels[i]]
    caught = [i for i in frauds if served[i]["is_fraud"]]
    missed_amount = sum(served[i]["amount"] for i in frauds if not served[i]["is_fraud"])
    assert total["transactions"] == len(served)
    assert total["alert_rate"]["successes"] == len(flagged)
    assert total["precision"]["successes"] == sum(labels[i] for i in flagged)
    assert total["precision"]["trials"] == len(flagged)
    assert total["recall"]["successes"] == len(caught)
    assert total["recall"]["trials"] == len(frauds)
    offline_cost = (REVIEW_COST * len(flagged) + missed_amount) / len(served)
    assert total["cost"]["value"] == pytest.approx(offline_cost, rel=1e-9)
    print(
        f"report: precision {len(caught)}/{len(flagged)}, recall {len(caught)}/{len(frauds)}, "
        f"cost per transaction {offline_cost:.4f}, equal to the offline computation"
    )
