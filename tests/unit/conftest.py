"""Fixtures of the unit tier: Ray Serve's metric classes replaced by recorders, since Ray's need a
replica."""

import pytest

from tests.unit.recorded_metrics import RecordedMetric


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> dict[str, RecordedMetric]:
    """The metrics made while the test runs, by name."""
    from ray.serve import metrics

    made: dict[str, RecordedMetric] = {}

    def make(name: str, **options: object) -> RecordedMetric:
        made[name] = RecordedMetric(name, **options)
        return made[name]

    for kind in ("Counter", "Gauge", "Histogram"):
        monkeypatch.setattr(metrics, kind, make)
    return made
