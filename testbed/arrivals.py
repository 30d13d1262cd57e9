"""Arrival processes: when each attach or ECR is *intended* to start (open loop).

Every generator yields offsets in seconds from the start of the run, bounded by a count and a
duration. Latency is measured from these intended times, so a slow EIR cannot hide its queueing
delay (no coordinated omission). Deterministic for a given seed.

* ``constant``: ``rate`` per second, evenly spaced;
* ``ramp``: rate rising (or falling) linearly from ``start_rate`` to ``rate`` over ``ramp`` seconds
  (the whole duration by default), then constant;
* ``burst``: ``rate`` per second evenly spaced plus ``burst_size`` extra arrivals at once every
  ``burst_every`` seconds;
* ``poisson``: exponential inter-arrival times with mean 1/``rate``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

__all__ = ["KINDS", "Arrivals", "arrivals_from_mapping"]

KINDS = ("constant", "ramp", "burst", "poisson")


@dataclass(frozen=True, slots=True)
class Arrivals:
    """An arrival process (see the module docstring for each kind)."""

    kind: str = "constant"
    rate: float = 1000.0
    start_rate: float = 0.0
    ramp: float | None = None
    burst_size: int = 0
    burst_every: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"arrivals.process: {self.kind!r} is not one of {', '.join(KINDS)}")
        if not self.rate > 0:
            raise ValueError(f"arrivals.rate: {self.rate!r} must be positive")
        if self.start_rate < 0:
            raise ValueError("arrivals.start_rate: must not be negative")
        if self.ramp is not None and self.ramp <= 0:
            raise ValueError("arrivals.ramp: must be positive (seconds)")
        if self.burst_size < 0 or self.burst_every <= 0:
            raise ValueError("arrivals.burst_size must be >= 0 and arrivals.burst_every > 0")

    def times(self, count: int, duration: float, seed: int = 0) -> Iterator[float]:
        """At most ``count`` offsets, all below ``duration`` seconds, non-decreasing."""
        if count <= 0 or duration <= 0:
            return
        for n, t in enumerate(self._raw(duration, seed), start=1):
            if t >= duration:
                return
            yield t
            if n >= count:
                return

    def _raw(self, duration: float, seed: int) -> Iterator[float]:
        if self.kind == "constant":
            step = 1.0 / self.rate
            i = 0
            while True:
                yield i * step
                i += 1
        elif self.kind == "poisson":
            rng = random.Random(seed)
            t = 0.0
            while True:
                yield t
                t += rng.expovariate(self.rate)
        elif self.kind == "ramp":
            yield from self._ramp(duration)
        else:
            yield from self._burst()

    def _ramp(self, duration: float) -> Iterator[float]:
        # Arrivals N(t) = r0 t + (r1 - r0) t^2 / 2T for t <= T: the k-th arrival solves N(t) = k.
        r0, r1 = self.start_rate, self.rate
        big_t = self.ramp if self.ramp is not None else duration
        a = (r1 - r0) / (2 * big_t)
        at_end = r0 * big_t + a * big_t * big_t
        k = 0
        while True:
            if k < at_end:
                t = k / r0 if a == 0 else (-r0 + math.sqrt(r0 * r0 + 4 * a * k)) / (2 * a)
            else:
                t = big_t + (k - at_end) / r1
            yield t
            k += 1

    def _burst(self) -> Iterator[float]:
        step = 1.0 / self.rate
        i = 0
        next_burst = 0.0
        while True:
            t = i * step
            while next_burst <= t:
                for _ in range(self.burst_size):
                    yield next_burst
                next_burst += self.burst_every
            yield t
            i += 1

    def mean_rate(self, duration: float) -> float:
        """Average arrivals per second over ``duration`` (for progress displays and sizing)."""
        if self.kind == "ramp":
            big_t = min(self.ramp or duration, duration)
            ramped = (self.start_rate + self.rate) / 2 * big_t
            return (ramped + self.rate * max(0.0, duration - big_t)) / duration
        if self.kind == "burst":
            return self.rate + self.burst_size / self.burst_every
        return self.rate


def arrivals_from_mapping(data: Mapping[str, object], where: str = "arrivals") -> Arrivals:
    """Build from YAML: ``{process, rate, start_rate, ramp, burst_size, burst_every}``."""
    known = {"process", "rate", "start_rate", "ramp", "burst_size", "burst_every"}
    for key in data:
        if key not in known:
            raise ValueError(f"{where}.{key}: unknown key (expected one of {', '.join(sorted(known))})")
    def num(key: str, default: float | None) -> float | None:
        v = data.get(key, default)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ValueError(f"{where}.{key}: expected a number, got {v!r}")
        return float(v)
    try:
        return Arrivals(
            kind=str(data.get("process", "constant")),
            rate=num("rate", 1000.0) or 0.0,
            start_rate=num("start_rate", 0.0) or 0.0,
            ramp=num("ramp", None),
            burst_size=int(num("burst_size", 0) or 0),
            burst_every=num("burst_every", 1.0) or 0.0,
        )
    except ValueError as e:
        msg = str(e)
        raise ValueError(msg if msg.startswith(where) else f"{where}: {msg}") from None
