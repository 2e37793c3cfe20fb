"""The peers' harness logic that needs no peer: request bodies, answer readers, environment reuse
and the comparison with the best peer."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks.peers.bodies import read_v2_probabilities, v2_request
from benchmarks.peers.catalog import PEERS, parse_peers
from benchmarks.peers.launch import peer_calibration
from benchmarks.peers.peer_calibration import platt
from benchmarks.peers.summary import ratios_to_best_peer
from benchmarks.peers.venvs import MARKER, ensure_venv
from fraud_model.artifact import load_artifact, read_metadata
from fraud_model.features import FEATURE_NAMES

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data" / "creditcard_real_subset.csv.gz"
BUNDLED = ROOT / "artifacts" / "default"


@pytest.fixture(scope="module")
def real_rows() -> list[dict[str, float]]:
    frame = pd.read_csv(DATA, nrows=50)
    rows: list[dict[str, float]] = frame[list(FEATURE_NAMES)].astype(float).to_dict("records")
    return rows


def test_v2_tensor_is_the_rows_in_feature_order(real_rows: list[dict[str, float]]) -> None:
    # Keys in another order (as a client may send them) must not move the columns.
    shuffled = [dict(reversed(list(row.items()))) for row in real_rows]
    (tensor,) = v2_request(shuffled)["inputs"]
    assert tensor["shape"] == [len(real_rows), len(FEATURE_NAMES)]
    assert tensor["datatype"] == "FP32"
    expected = np.array([[row[name] for name in FEATURE_NAMES] for row in real_rows])
    assert np.array_equal(np.reshape(tensor["data"], tensor["shape"]), expected)


def test_one_transaction_is_a_1x29_tensor(real_rows: list[dict[str, float]]) -> None:
    (tensor,) = PEERS["mlserver"].single_body(real_rows[0])["inputs"]
    assert tensor["shape"] == [1, 29]
    assert tensor["data"][0] == real_rows[0]["V1"]
    assert tensor["data"][-1] == real_rows[0]["Amount"]


def test_v2_answer_is_read_as_the_fraud_class_column() -> None:
    proba = np.array([[0.9, 0.1], [0.25, 0.75], [1.0, 0.0]])
    answer = {"outputs": [{"name": "predict_proba", "shape": [3, 2], "datatype": "FP64",
                           "data": proba.ravel().tolist()}]}  # fmt: skip
    assert read_v2_probabilities(answer) == [(0.1, None), (0.75, None), (0.0, None)]
    answer["outputs"][0]["shape"] = [2, 3]  # predict_proba of another model
    with pytest.raises(ValueError, match="2 classes"):
        read_v2_probabilities(answer)


def test_peers_are_chosen_by_name() -> None:
    assert parse_peers("none") == []
    assert [peer.name for peer in parse_peers("all")] == list(PEERS)
    assert [peer.name for peer in parse_peers("litserve, mlserver")] == ["litserve", "mlserver"]
    with pytest.raises(ValueError, match="torchserve"):
        parse_peers("mlserver,torchserve")


def test_an_environment_is_made_once_and_again_when_its_pins_change(tmp_path: Path) -> None:
    calls: list[list[str]] = []

    def fake_uv(arguments: list[str]) -> None:
        calls.append(arguments)
        if arguments[0] == "venv":
            python = Path(arguments[-1]) / "bin" / "python"
            python.parent.mkdir(parents=True)
            python.touch()

    venv = ensure_venv("peer", ["a==1", "b==2"], root=tmp_path, run=fake_uv)
    assert [call[0] for call in calls] == ["venv", "pip"]
    assert calls[1][-2:] == ["a==1", "b==2"]
    ensure_venv("peer", ["a==1", "b==2"], root=tmp_path, run=fake_uv)
    assert len(calls) == 2  # reused
    (venv / "stale").touch()
    ensure_venv("peer", ["a==1", "b==3"], root=tmp_path, run=fake_uv)
    assert len(calls) == 4 and calls[3][-1] == "b==3"
    assert not (venv / "stale").exists()  # made anew, not installed over


def test_an_interrupted_install_is_made_again(tmp_path: Path) -> None:
    def failing_uv(arguments: list[str]) -> None:
        if arguments[0] == "venv":
            (Path(arguments[-1]) / "bin").mkdir(parents=True)
            (Path(arguments[-1]) / "bin" / "python").touch()
        else:
            raise RuntimeError("install failed")

    with pytest.raises(RuntimeError):
        ensure_venv("peer", ["a==1"], root=tmp_path, run=failing_uv)
    assert not (tmp_path / "peer" / MARKER).exists()


def _suite(p50: float, rps: float, p99: float, tx: float | None) -> dict[str, dict]:
    suite: dict[str, dict] = {"c1": {"p50_ms": p50}, "c32": {"rps": rps, "p99_ms": p99}}
    if tx is not None:
        suite["batch1000_c2"] = {"tx_per_s": tx}
    return suite


def test_ours_is_divided_by_the_best_peer_of_each_figure() -> None:
    peers = {
        "fast_single": _suite(2.0, 800.0, 90.0, None),  # no batch path: not compared there
        "high_rate": _suite(10.0, 1000.0, 60.0, 50_000.0),
    }
    ratios = ratios_to_best_peer(_suite(4.0, 1500.0, 30.0, 40_000.0), peers, "c1", "c32")
    assert ratios == {
        "c1_p50_ms": {"best_peer": "fast_single", "ratio": 2.0},  # lowest latency is best
        "c32_rps": {"best_peer": "high_rate", "ratio": 1.5},  # highest rate is best
        "c32_p99_ms": {"best_peer": "high_rate", "ratio": 0.5},
        "batch_tx_per_s": {"best_peer": "high_rate", "ratio": 0.8},
    }


def test_the_peers_calibration_gives_the_service_s_probabilities(
    real_rows: list[dict[str, float]],
) -> None:
    artifact = load_artifact(BUNDLED)
    matrix = np.array([[row[name] for name in FEATURE_NAMES] for row in real_rows], np.float32)
    calibration = peer_calibration(read_metadata(BUNDLED))
    np.testing.assert_allclose(
        platt(artifact.engine.raw_fraud_scores(matrix), calibration),
        artifact.fraud_probability(matrix),
        rtol=1e-12,
    )
