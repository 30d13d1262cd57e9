"""Prometheus metrics of the EIR, modelled on operator EIR measurement counters.

Oracle's EIR counts WHITE, GRAY, BLACK, BLKAL (blacklisted but allowed by IMSI pairing), UNKN and
the total received; we keep the same split as ``eir_answers_total{outcome=...}`` plus answers by
Result-Code, latency, peers and store health. Label values are pre-bound: ``labels()`` per request
costs 4x an ``inc()`` (performance-notes.md).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["EirMetrics"]

_OUTCOMES = ("white", "grey", "black", "black-allowed-by-pairing", "unknown", "store-unavailable")
_LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


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
        self.latency = Histogram("eir_request_latency_seconds", "From request decoded to answer queued",
                                 buckets=_LATENCY_BUCKETS, registry=r)
        self.store_round_trips = Counter("eir_store_round_trips", "Batched store lookups", registry=r)
        self.cache_hits = Counter("eir_cache_hits", "Decisions answered from the in-process cache", registry=r)
        self.cache_misses = Counter("eir_cache_misses", "Decisions that needed the store", registry=r)
        self.peers = Gauge("eir_peers", "Diameter peer connections by state", ["state"], registry=r)
        self.store_up = Gauge("eir_store_up", "1 when the last store round trip succeeded", registry=r)
        self.s13_requests = self.requests.labels("s13")
        self.by_outcome = {o: self.answers.labels(o) for o in _OUTCOMES}
        self._by_code: dict[int, Counter] = {}

    def result(self, code: int) -> None:
        c = self._by_code.get(code)
        if c is None:
            c = self._by_code[code] = self.results.labels(str(code))
        c.inc()
