"""The side-by-side table of a run with peers, and this service's ratios to the best of them."""

import logging
from typing import Any

logger = logging.getLogger("benchmarks")

Suite = dict[str, dict[str, Any]]
BATCH = "batch1000_c2"
COLUMNS = "columns1000_c2"  # this service's columnar batch body


def headline(suite: Suite, low: str, high: str) -> dict[str, float | None]:
    """The figures compared: p50 at the lowest concurrency, req/s and p99 at the highest, and the
    batch path's transactions/s, in the server's fastest batch format (None where a server has
    no batch path)."""
    rates = [suite[key]["tx_per_s"] for key in (BATCH, COLUMNS) if key in suite]
    return {
        f"{low}_p50_ms": suite[low]["p50_ms"],
        f"{high}_rps": suite[high]["rps"],
        f"{high}_p99_ms": suite[high]["p99_ms"],
        "batch_tx_per_s": max(rates) if rates else None,
    }


def ratios_to_best_peer(
    ours: Suite, peers: dict[str, Suite], low: str, high: str
) -> dict[str, dict[str, float | str]]:
    """Ours divided by the best peer's figure, figure by figure: the best is the lowest latency
    and the highest rate, so a ratio above 1 is better for rates and worse for latencies."""
    mine = headline(ours, low, high)
    theirs = {name: headline(suite, low, high) for name, suite in peers.items()}
    ratios: dict[str, dict[str, float | str]] = {}
    for figure, value in mine.items():
        offered = {name: v for name, h in theirs.items() if (v := h[figure]) is not None}
        if value is None or not offered:
            continue
        pick = min if figure.endswith("_ms") else max
        best = pick(offered, key=lambda name: offered[name])
        ratios[figure] = {"best_peer": best, "ratio": round(value / offered[best], 3)}
    return ratios


def log_side_by_side(servers: dict[str, Suite], low: str, high: str) -> None:
    logger.info("== side by side (medians; CPU ms per request at %s)", high)
    for name, suite in servers.items():
        figures = headline(suite, low, high)
        batch = figures["batch_tx_per_s"]
        logger.info(
            "  %-26s %s p50 %7.2f ms  %s %7.1f req/s p99 %7.2f ms  batch %9s tx/s  CPU %.2f ms",
            name, low, figures[f"{low}_p50_ms"], high, figures[f"{high}_rps"],
            figures[f"{high}_p99_ms"], f"{batch:,.0f}" if batch else "-",
            suite[high]["cpu_ms_per_request"],
        )  # fmt: skip


def log_ratios(mode: str, ratios: dict[str, dict[str, float | str]]) -> None:
    for figure, entry in ratios.items():
        logger.info("  %-26s %-16s x%.2f of the best peer (%s)", mode, figure, entry["ratio"],
                    entry["best_peer"])  # fmt: skip
