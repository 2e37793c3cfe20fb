"""Figures of settings measured in rounds (each setting once per round, in turn): their medians,
and the JSON written with every run."""

import json
import statistics
from pathlib import Path

FIGURES = ("rps", "p50_ms", "p99_ms", "cpu_ms_per_request")


def median_figures(runs: dict[str, list[dict]]) -> dict[str, dict]:
    """Per setting, the median of each figure over its runs, and all their errors."""
    return {
        name: {key: statistics.median(run[key] for run in results) for key in FIGURES}
        | {"errors": sum(run["errors"] for run in results)}
        for name, results in runs.items()
    }


def write_results(path: Path | None, runs: dict[str, list[dict]]) -> None:
    """The medians and every run, as JSON at `path` (if given)."""
    if path is not None:
        path.write_text(json.dumps({"medians": median_figures(runs), "runs": runs}, indent=2))
