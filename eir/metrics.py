"""Prometheus metrics of the EIR, modelled on operator EIR measurement counters.

Oracle's EIR counts WHITE, GRAY, BLACK, BLKAL (blacklisted but allowed by IMSI pairing), UNKN and
the total received; we keep the same split as ``eir_answers_total{outcome=...}`` plus answers by
Result-Code, latency, peers and store health.

The hot path never calls prometheus-client per request (a labelled ``inc()`` costs about 0.6 us, a
histogram ``observe()`` about 0.8 us; performance-notes.md): the S13 front end counts a whole batch in
plain integers and adds it here once per batch, and latency goes into a plain bucket array exported by
a custom collector at scrape time.
"""

from __future__ import annotations

import bisect
from collections import Counter as Tally
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

__all__ = ["EirMetrics", "FastHistogram"]

OUTCOMES = ("white", "grey", "black", "black-allowed-by-pairing", "unknown", "store-unavailable")
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class FastHistogram(Collector):
    """A histogram kept as plain ints; ``observe_n`` records one value for n requests at once."""

    def __init__(self, name: str, documentation: str, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.name = name
        self.documentation = documentation
        self.bounds = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0

    def observe_n(self, value: float, n: int = 1) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += n
        self.total += value * n

    @property
    def count(self) -> int:
        return sum(self.counts)

    def collect(self) -> Iterator[HistogramMetricFamily]:
        cumulative = 0
        buckets: list[tuple[str, float]] = []
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            cumulative += n
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), float(cumulative)))
        yield HistogramMetricFamily(self.name, self.documentation, buckets=buckets, sum_value=self.total)


class EirMetrics:
    """All counters of one EIR process, in their own registry (tests create as many as they like)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter("eir_requests", "ME-Identity-Check requests received", ["interface"], registry=r)
        self.answers = Counter(
            "eir_answers", "Decisions answered, by outcome (WHITE/GREY/BLACK/BLKAL/UNKN)", ["outcome"], registry=r
        )
        self.results = Counter("eir_results", "Answers by Result-Code or Experimental-Result-Code", ["code"],
                               registry=r)
        self.latency = FastHistogram("eir_request_latency_seconds", "From request decoded to answer queued")
        r.register(self.latency)
        self.store_round_trips = Counter("eir_store_round_trips", "Batched store lookups", registry=r)
        self.cache_hits = Counter("eir_cache_hits", "Decisions answered from the in-process cache", registry=r)
        self.cache_misses = Counter("eir_cache_misses", "Decisions that needed the store", registry=r)
        self.peers = Gauge("eir_peers", "Diameter peer connections by state", ["state"], registry=r)
        self.store_up = Gauge("eir_store_up", "1 when the last store round trip succeeded", registry=r)
        self.cache_hit_ratio = Gauge("eir_cache_hit_ratio", "Cache hits / decisions since start", registry=r)
        self.s13_requests = self.requests.labels("s13")
        self.by_outcome = {o: self.answers.labels(o) for o in OUTCOMES}
        self._by_code: dict[int, Counter] = {}
        self.hits = 0
        self.misses = 0

    def result(self, code: int, n: int = 1) -> None:
        c = self._by_code.get(code)
        if c is None:
            c = self._by_code[code] = self.results.labels(str(code))
        c.inc(n)

    def add_batch(self, outcomes: Tally[str], results: Tally[int]) -> None:
        """Add one batch's tallies (one prometheus call per distinct label, not per request)."""
        for outcome, n in outcomes.items():
            self.by_outcome[outcome].inc(n)
        for code, n in results.items():
            self.result(code, n)

    def cache(self, hits: int, misses: int) -> None:
        if hits:
            self.hits += hits
            self.cache_hits.inc(hits)
        if misses:
            self.misses += misses
            self.cache_misses.inc(misses)

    def update_ratio(self) -> None:
        """Called at scrape time."""
        total = self.hits + self.misses
        self.cache_hit_ratio.set(self.hits / total if total else 0.0)
