"""The side-by-side harness's rounds: the order servers take turns in, and one figure from them."""

import pytest

from benchmarks.run import in_turn, merged, merged_suites


def figure(rps: list[float], requests: list[int], cpu_ms: dict[str, float]) -> dict:
    """A figure as drive() gives it for one round: its runs, and the CPU per request over them."""
    runs = [
        {
            "rps": r,
            "p50_ms": 1000 / r,
            "p99_ms": 2000 / r,
            "errors": 0,
            "requests": n,
            "client": "wrk",
        }
        for r, n in zip(rps, requests, strict=True)
    ]
    return {"runs": runs, "cpu_ms_by_process": cpu_ms}


def test_each_round_starts_one_server_further_and_every_server_runs_once_a_round() -> None:
    servers = ["seed", "ours", "mlserver", "litserve"]
    orders = [in_turn(servers, turn) for turn in range(5)]
    assert [order[0] for order in orders] == ["seed", "ours", "mlserver", "litserve", "seed"]
    assert all(sorted(order) == sorted(servers) for order in orders)
    assert orders[1] == ["ours", "mlserver", "litserve", "seed"]


def test_a_figure_is_the_median_of_every_round_s_runs() -> None:
    rounds = [figure([100.0], [800], {}), figure([300.0], [2400], {}), figure([200.0], [1600], {})]
    merged_figure = merged(rounds)
    assert merged_figure["rps"] == 200.0
    assert merged_figure["p50_ms"] == 5.0
    assert [run["rps"] for run in merged_figure["runs"]] == [100.0, 300.0, 200.0]


def test_cpu_per_request_is_over_all_requests_not_the_mean_of_the_rounds() -> None:
    # 1,000 requests at 2 ms and 3,000 at 1 ms: 5,000 ms over 4,000 requests.
    rounds = [
        figure([125.0], [1000], {"ingress": 1.5, "model": 0.5}),
        figure([375.0], [3000], {"ingress": 1.0}),
    ]
    merged_figure = merged(rounds)
    assert merged_figure["cpu_ms_by_process"] == {"ingress": 1.125, "model": 0.125}
    assert merged_figure["cpu_ms_per_request"] == pytest.approx(1.25)


def test_a_batch_figure_keeps_its_transactions_a_second() -> None:
    rounds = [
        {"c1": figure([200.0], [1600], {}), "columns1000_c2": figure([50.0], [400], {})},
        {"c1": figure([220.0], [1760], {}), "columns1000_c2": figure([70.0], [560], {})},
    ]
    suite = merged_suites(rounds)
    assert suite["columns1000_c2"]["tx_per_s"] == 60_000
    assert "tx_per_s" not in suite["c1"]
