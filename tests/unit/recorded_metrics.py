"""A stand-in for Ray Serve's metric classes, which need a replica."""


class RecordedMetric:
    """Stands in for a ray.serve.metrics metric: keeps every call (Ray needs a replica)."""

    def __init__(self, name: str, **_: object) -> None:
        self.name = name
        self.calls: list[tuple[str, float, dict]] = []

    def inc(self, value: float = 1.0, tags: dict | None = None) -> None:
        if value <= 0:
            raise ValueError("Counter.inc needs a positive value, as Ray's does")
        self.calls.append(("inc", value, tags or {}))

    def set(self, value: float, tags: dict | None = None) -> None:
        self.calls.append(("set", value, tags or {}))

    def observe(self, value: float, tags: dict | None = None) -> None:
        self.calls.append(("observe", value, tags or {}))
