"""Latency recording with HDR histograms (the ``hdrhistogram`` package): overall and per second.

Values are microseconds from the *intended* start (see :mod:`testbed.arrivals`), 1 µs to 60 s at 3
significant digits. Histograms from several worker processes merge exactly (encode/decode_and_add).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

__all__ = ["PERCENTILES", "LatencyRecorder", "new_histogram", "summarize"]

#: Percentiles reported everywhere (plus max).
PERCENTILES = (50.0, 90.0, 99.0, 99.9)
_LOW, _HIGH, _DIGITS = 1, 60_000_000, 3


def new_histogram() -> HdrHistogram:
    return HdrHistogram(_LOW, _HIGH, _DIGITS)


def summarize(h: HdrHistogram) -> dict[str, float]:
    """count, p50/p90/p99/p99.9 and max in milliseconds."""
    out: dict[str, float] = {"count": float(h.get_total_count())}
    for p in PERCENTILES:
        out[f"p{p:g}"] = h.get_value_at_percentile(p) / 1000.0 if out["count"] else 0.0
    out["max"] = h.get_max_value() / 1000.0 if out["count"] else 0.0
    return out


@dataclass
class LatencyRecorder:
    """An overall histogram and one per time bucket of the run (for percentiles over time).

    ``per_second`` is keyed by bucket number; a bucket lasts ``resolution`` seconds (1 by default).
    """

    total: HdrHistogram = field(default_factory=new_histogram)
    per_second: dict[int, HdrHistogram] = field(default_factory=dict)
    resolution: float = 1.0

    def record(self, second: int, micros: int, count: int = 1) -> None:
        v = min(max(micros, _LOW), _HIGH)
        self.total.record_value(v, count)
        h = self.per_second.get(second)
        if h is None:
            h = self.per_second[second] = new_histogram()
        h.record_value(v, count)

    def merge(self, other: LatencyRecorder) -> None:
        self.total.add(other.total)
        for s, h in other.per_second.items():
            mine = self.per_second.get(s)
            if mine is None:
                mine = self.per_second[s] = new_histogram()
            mine.add(h)

    def encode(self) -> dict[str, Any]:
        """A picklable/JSON-able form (compressed HdrHistogram blobs) for worker processes."""
        return {"total": self.total.encode().decode(), "resolution": self.resolution,
                "per_second": {str(s): h.encode().decode() for s, h in self.per_second.items()}}

    @classmethod
    def decode(cls, data: dict[str, Any]) -> LatencyRecorder:
        rec = cls(resolution=float(data.get("resolution", 1.0)))
        rec.total.decode_and_add(data["total"])
        for s, blob in data["per_second"].items():
            h = new_histogram()
            h.decode_and_add(blob)
            rec.per_second[int(s)] = h
        return rec

    def timeline(self) -> list[dict[str, float]]:
        """Per-second summaries in time order."""
        return [{"t": s * self.resolution, **summarize(h)} for s, h in sorted(self.per_second.items())]
