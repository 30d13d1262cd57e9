"""Prometheus metrics of the EIR, modelled on operator EIR measurement counters.

Oracle's EIR counts WHITE, GRAY, BLACK, BLKAL (blacklisted but allowed by IMSI pairing), UNKN and
the total received; we keep the same split as ``eir_answers_total{outcome=...}`` plus answers by
Result-Code, latency, peers and store health.

The hot path never calls prometheus-client (a labelled ``inc()`` costs about 0.6 us, a histogram
``observe()`` about 0.8 us; performance-notes.md): counters (:class:`HotCounters`) and latency
(:class:`FastHistogram`) are plain ints exported by custom collectors at scrape time.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from eir.register.decision import Outcome

__all__ = ["EirMetrics", "FastHistogram", "HotCounters"]

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


class HotCounters(Collector):
    """The counters the S13 hot path adds to: plain ints and dicts, exported as Prometheus counters at scrape.

    A prometheus-client ``inc()`` takes a lock and costs ~0.6 µs; with a read every 0.1 ms carrying two
    requests, the six or so per read (plus two ``Counter`` tallies) were a tenth of the EIR's CPU. Here a
    front end adds to a dict entry; :meth:`collect` turns the totals into ``eir_requests_total{interface}``,
    ``eir_answers_total{outcome}``, ``eir_results_total{code}``, ``eir_store_round_trips_total`` and
    ``eir_cache_{hits,misses}_total``. One event loop writes them, so no lock is needed.
    """

    def __init__(self) -> None:
        self.requests: dict[str, int] = {"s13": 0}
        #: By outcome (``Outcome`` members, str-valued), all present from the start so every series exists.
        self.outcomes: dict[Outcome, int] = dict.fromkeys(Outcome, 0)
        #: By Result-Code or Experimental-Result-Code.
        self.results: dict[int, int] = {}
        self.round_trips = 0
        self.hits = 0
        self.misses = 0

    def collect(self) -> Iterator[CounterMetricFamily]:
        fam = CounterMetricFamily("eir_requests", "ME-Identity-Check requests received", labels=["interface"])
        for interface, n in self.requests.items():
            fam.add_metric([interface], n)
        yield fam
        fam = CounterMetricFamily("eir_answers", "Decisions answered, by outcome (WHITE/GREY/BLACK/BLKAL/UNKN)",
                                  labels=["outcome"])
        for outcome, n in self.outcomes.items():
            fam.add_metric([outcome.value], n)
        yield fam
        fam = CounterMetricFamily("eir_results", "Answers by Result-Code or Experimental-Result-Code", labels=["code"])
        for code, n in sorted(self.results.items()):
            fam.add_metric([str(code)], n)
        yield fam
        yield CounterMetricFamily("eir_store_round_trips", "Batched store lookups", value=self.round_trips)
        yield CounterMetricFamily("eir_cache_hits", "Decisions answered from the in-process cache", value=self.hits)
        yield CounterMetricFamily("eir_cache_misses", "Decisions that needed the store", value=self.misses)


class EirMetrics:
    """All metrics of one EIR process, in their own registry (tests create as many as they like)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.counts = HotCounters()
        r.register(self.counts)
        self.latency = FastHistogram("eir_request_latency_seconds", "From request decoded to answer queued")
        r.register(self.latency)
        self.peers = Gauge("eir_peers", "Diameter peer connections by state", ["state"], registry=r)
        self.store_up = Gauge("eir_store_up", "1 when the last store round trip succeeded", registry=r)
        self.cache_hit_ratio = Gauge("eir_cache_hit_ratio", "Cache hits / decisions since start", registry=r)

    def update_ratio(self) -> None:
        """Called at scrape time."""
        total = self.counts.hits + self.counts.misses
        self.cache_hit_ratio.set(self.counts.hits / total if total else 0.0)
