"""The open-loop load generator: ECRs at a scheduled rate, latency from the intended send time.

Design (see ../shared/reference/performance-notes.md: one Python process tops out near 100k req/s):

* ``workers`` processes, each with its own connections; every connection is one simulated MME with
  its own Origin-Host (an EIR may refuse two connections from one Origin-Host, RFC 6733 §5.6.4);
* the request schedule is open loop: request *i* is due at ``t0 + times[i]``; every tick (0.1 ms, from a
  ``timerfd``: :mod:`testbed.ticker`; 1 ms above 50k/s per worker) the worker sends all due requests in
  one write per connection. A request delayed by a full window
  (``max_in_flight``) or a slow loop is still timed from when it was due (no coordinated omission);
* the hot path skips the message objects: each device's ECR (TS 29.272 §7.2.19) is encoded once with
  the codec, then only the header identifiers and a fixed-width Session-Id counter change; answers
  are cut by length, matched by Hop-by-Hop and classified by :class:`testbed.eca.FastClassifier`;
* the capabilities exchange, watchdog answers and DPR use the ordinary codec;
* times come from ``time.monotonic()`` (nanoseconds), never ``loop.time()``: uvloop's clock is the
  loop's cached time in whole milliseconds, which quantised every latency to the millisecond;
* latencies go into HDR histograms (:mod:`testbed.latency`) merged across workers; each run is bounded
  by ``max_requests`` and, when the server cannot keep up, by ``duration + timeout`` of sending; outstanding
  requests are given ``timeout`` to finish, counted from when they were sent;
* :attr:`LoadResult.sustained` is the steady answer rate (median answers per whole second while sending), the
  figure to read at saturation, where a behind-schedule generator sends for longer than ``duration``.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing as mp
import queue
import random
import statistics
import struct
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from protocols.diameter import Avp, LocalNode, Message, decode_message, encode_message, make_answer
from protocols.diameter import base_rfc6733 as base
from protocols.diameter.message import FLAG_REQUEST
from testbed.arrivals import Arrivals
from testbed.eca import FastClassifier
from testbed.latency import LatencyRecorder, summarize
from testbed.mme import build_ecr, mme_capabilities
from testbed.responder import run_fast
from testbed.ticker import make_ticker

__all__ = ["LoadConfig", "LoadResult", "run_load"]

_HEADER = struct.Struct(">IIIII")
_CER, _DWR, _DPR = 257, 280, 282


@dataclass(frozen=True)
class LoadConfig:
    """One load run. ``rate`` is the total over all workers; ``mmes`` connections in all."""

    host: str
    port: int
    rate: float
    duration: float
    max_requests: int = 10_000_000
    workers: int = 1
    mmes: int = 1
    max_in_flight: int = 20_000
    timeout: float = 2.0
    realm: str = "localdomain"
    arrivals: Arrivals | None = None
    #: (imei as sent, svn, imsi, expected answer class or "", category) per device; empty: one white device.
    devices: tuple[tuple[str, str, str, str, str], ...] = ()
    origin_prefix: str = "load"
    #: Keep one ECR/ECA exchange in ``pcap_sample`` for the trace (0: none), at most ``pcap_max`` per worker.
    pcap_sample: int = 0
    pcap_max: int = 20_000
    #: Seconds between sending rounds (:mod:`testbed.ticker`): a request waits up to this long to go out.
    #: None: 0.1 ms up to 50k requests/s per worker (what a latency figure needs), else 1 ms (each round
    #: costs a wake-up and a write, which a worker near its ceiling cannot spend 10,000 times a second).
    tick: float | None = None

    def tick_for(self, worker_rate: float) -> float:
        if self.tick is not None:
            return self.tick
        return 0.0001 if worker_rate <= 50_000 else 0.001

    def origin_host(self, k: int) -> str:
        return f"{self.origin_prefix}-mme{k + 1}.testbed.localdomain"


@dataclass
class LoadResult:
    """Merged results of every worker."""

    config: LoadConfig
    sent: int = 0
    answered: int = 0
    timeouts: int = 0
    answers: Counter[str] = field(default_factory=Counter)
    wrong: dict[str, Counter[str]] = field(default_factory=dict)
    latency: LatencyRecorder = field(default_factory=LatencyRecorder)
    sent_per_second: Counter[int] = field(default_factory=Counter)
    answered_per_second: Counter[int] = field(default_factory=Counter)
    elapsed: float = 0.0
    errors: list[str] = field(default_factory=list)
    #: Sampled exchanges: (MME index, ECR bytes, wall time sent, ECA bytes, wall time answered).
    samples: list[tuple[int, bytes, float, bytes, float]] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        """Answers over the whole run, the final wait for outstanding answers included."""
        return self.answered / self.elapsed if self.elapsed else 0.0

    @property
    def sustained(self) -> float:
        """Answers per second in the steady state: the median of the per-second answer counts over the whole
        seconds after the first and before the last second in which requests were sent (the first ramps up,
        the last is partial). Runs of under three seconds of sending fall back to :attr:`throughput`."""
        sending = sorted(self.sent_per_second)
        if len(sending) < 3:
            return self.throughput
        return float(statistics.median(self.answered_per_second.get(s, 0)
                                       for s in range(sending[0] + 1, sending[-1])))

    def to_json(self) -> dict[str, Any]:
        cfg = asdict(self.config)
        cfg.pop("devices")
        cfg["devices"] = len(self.config.devices)
        if self.config.arrivals is not None:
            cfg["arrivals"] = asdict(self.config.arrivals)
        seconds = sorted(set(self.sent_per_second) | set(self.answered_per_second) | set(self.latency.per_second))
        lat = {int(r["t"]): r for r in self.latency.timeline()}
        timeline = [{**lat.get(s, {"t": float(s)}), "sent": self.sent_per_second.get(s, 0),
                     "completed": self.answered_per_second.get(s, 0)} for s in seconds]
        return {"kind": "load", "config": cfg, "sent": self.sent, "answered": self.answered,
                "timeouts": self.timeouts, "elapsed_s": round(self.elapsed, 3),
                "throughput_per_s": round(self.throughput, 1), "sustained_per_s": round(self.sustained, 1),
                "answers": dict(self.answers),
                "wrong_by_category": {k: dict(v) for k, v in self.wrong.items()},
                "latency_ms": summarize(self.latency.total), "timeline": timeline, "errors": self.errors}


# ---------------------------------------------------------------------------- one connection
class _Conn(asyncio.Protocol):
    """A raw Diameter client connection: CER/CEA with the codec, ECRs from pre-encoded templates."""

    def __init__(self, worker: _Worker, origin: str, realm: str) -> None:
        self.w = worker
        self.caps = mme_capabilities(origin, realm)
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed = False
        self.buf = b""
        self.out: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        cer = Message(_CER, 0, FLAG_REQUEST, 1, 1, list(self.caps.avps()))
        transport.write(encode_message(cer))  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"closed before CEA: {exc}"))

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        pos, n = 0, len(buf)
        w = self.w
        while n - pos >= 20:
            length = int.from_bytes(buf[pos + 1:pos + 4], "big")
            if n - pos < length:
                break
            if length < 20:
                self.transport.close()  # type: ignore[union-attr]
                return
            flags = buf[pos + 4]
            if flags & 0x80 or not self.opened.done():
                self._control(buf[pos:pos + length])
            else:
                w.on_answer(buf, pos, length)
            pos += length
        self.buf = buf[pos:] if pos < n else b""

    def _control(self, data: bytes) -> None:
        msg = decode_message(data)
        if not msg.is_request and msg.command == _CER:
            rc = msg.get(base.RESULT_CODE)
            if rc == base.ResultCode.DIAMETER_SUCCESS:
                self.opened.set_result(None)
            else:
                self.opened.set_exception(ConnectionRefusedError(f"CEA Result-Code {rc}"))
            return
        if msg.is_request and msg.command in (_DWR, _DPR):
            ans = make_answer(msg, [Avp.new(base.RESULT_CODE, base.ResultCode.DIAMETER_SUCCESS),
                                    *self.caps.node.origin_avps])
            self.transport.write(encode_message(ans))  # type: ignore[union-attr]

    def flush(self) -> None:
        if self.out and self.transport is not None and not self.closed:
            self.transport.write(b"".join(self.out))
        self.out.clear()

    def disconnect(self) -> None:
        if self.transport is not None and not self.closed:
            dpr = Message(_DPR, 0, FLAG_REQUEST, 2, 2, [*self.caps.node.origin_avps,
                                                         Avp.new(base.DISCONNECT_CAUSE, 0)])
            self.transport.write(encode_message(dpr))
            self.transport.close()


# ---------------------------------------------------------------------------- one worker process
class _Worker:
    def __init__(self, cfg: LoadConfig, index: int) -> None:
        self.cfg = cfg
        self.index = index
        self.share = [k for k in range(cfg.mmes) if k % cfg.workers == index]
        self.rate = cfg.rate / cfg.workers
        self.count = cfg.max_requests // cfg.workers + (1 if index < cfg.max_requests % cfg.workers else 0)
        self.pending: dict[int, int] = {}
        self.classify = FastClassifier()
        self.answers: Counter[str] = Counter()
        self.wrong: dict[str, Counter[str]] = {}
        self.micros: dict[int, int] = {}
        self.latency = LatencyRecorder()
        self.sent_ps: Counter[int] = Counter()
        self.ans_ps: Counter[int] = Counter()
        self.sent = 0
        self.answered = 0
        self.swept = 0
        #: (time sent, index of the next request) after each tick that sent something: timeouts count from
        #: when a request was sent, not from when it was due, or a generator behind schedule would drop
        #: answers to requests it has only just sent.
        self.sends: deque[tuple[float, int]] = deque()
        self.t0 = 0.0
        self.loop: asyncio.AbstractEventLoop | None = None
        self.times: list[float] | None = None
        self.expected: list[str] = []
        self.category: list[str] = []
        self.sampling: dict[int, tuple[int, bytes, float]] = {}
        self.samples: list[tuple[int, bytes, float, bytes, float]] = []

    def intended(self, i: int) -> float:
        return self.times[i] if self.times is not None else i / self.rate

    def on_answer(self, buf: bytes, pos: int, length: int) -> None:
        hbh = int.from_bytes(buf[pos + 12:pos + 16], "big")
        i = self.pending.pop(hbh, None)
        if i is None:
            return  # late answer of a request already counted as timed out
        now = time.monotonic() - self.t0
        us = int((now - self.intended(i)) * 1e6)
        self.micros[us] = self.micros.get(us, 0) + 1
        if self.sampling:
            s = self.sampling.pop(hbh, None)
            if s is not None:
                self.samples.append((s[0], s[1], s[2], bytes(buf[pos:pos + length]), time.time()))
        cls = self.classify(memoryview(buf)[pos:pos + length])[0].value
        self.answers[cls] += 1
        if self.expected:
            d = i % len(self.expected)
            exp = self.expected[d]
            if exp and cls != exp:
                row = self.wrong.setdefault(self.category[d], Counter())
                row[f"{exp}->{cls}"] += 1
        self.answered += 1

    def flush_latency(self, sec: int | None = None) -> None:
        """Record the latencies gathered since the last flush, in second ``sec`` of the run (default: now)."""
        if not self.micros:
            return
        if sec is None:
            sec = int(time.monotonic() - self.t0)
        record = self.latency.record
        for us, n in self.micros.items():
            record(sec, us, n)
        self.ans_ps[sec] += sum(self.micros.values())
        self.micros = {}

    def templates(self) -> list[tuple[bytes, bytes]]:
        """Per device: (body before the Session-Id counter, body after it), headers excluded.

        Devices that differ only in their IMEI (same IMEI length, SVN and IMSI) share one encoded ECR with the
        IMEI spliced in, so a population of a million devices is ready in a second or two, not a minute.
        """
        devices = self.cfg.devices or (("35000000000000", "01", "001010000000001", "", "load"),)
        out = []
        for k in self.share:
            origin = mme_capabilities(self.cfg.origin_host(k), "epc.testbed").node
            sid = f"{origin.host};{self.index};" + "\0" * 10
            shapes: dict[tuple[int, str, str], tuple[bytes, bytes, bytes] | None] = {}
            for imei, svn, imsi, _, _ in devices:
                raw = imei.encode()
                shape_key = (len(raw), svn, imsi)
                if shape_key not in shapes:
                    shapes[shape_key] = self._shape(origin, sid, len(raw), svn, imsi)
                shape = shapes[shape_key]
                if shape is not None:
                    out.append((shape[0], shape[1] + raw + shape[2]))
                    continue
                body = encode_message(build_ecr(origin, self.cfg.realm, sid, imei, svn, imsi or None))[20:]
                cut = body.index(b"\0" * 10)
                out.append((body[:cut], body[cut + 10:]))
        self.expected = [d[3] for d in devices]
        self.category = [d[4] for d in devices]
        return out

    def _shape(self, origin: LocalNode, sid: str, length: int, svn: str,
               imsi: str) -> tuple[bytes, bytes, bytes] | None:
        """(before the Session-Id counter, between it and the IMEI, after the IMEI), or None if the IMEI's place
        cannot be found unambiguously."""
        mark = b"\x01" * length
        body = encode_message(build_ecr(origin, self.cfg.realm, sid, mark.decode(), svn, imsi or None))[20:]
        cut = body.index(b"\0" * 10)
        rest = body[cut + 10:]
        if length == 0 or rest.count(mark) != 1:
            return None
        at = rest.index(mark)
        return body[:cut], rest[:at], rest[at + length:]

    async def run(self, progress: Callable[[dict[str, Any]], None], go: Callable[[], None]) -> None:
        cfg = self.cfg
        loop = self.loop = asyncio.get_running_loop()
        conns: list[_Conn] = []
        for k in self.share:
            _, c = await loop.create_connection(lambda k=k: _Conn(self, cfg.origin_host(k), "epc.testbed"),  # type: ignore[misc]
                                                cfg.host, cfg.port)
            await asyncio.wait_for(c.opened, 5.0)
            conns.append(c)
        if cfg.arrivals is not None and cfg.arrivals.kind != "constant":
            share = cfg.arrivals.__class__(**{**asdict(cfg.arrivals),
                                              "rate": cfg.arrivals.rate / cfg.workers,
                                              "start_rate": cfg.arrivals.start_rate / cfg.workers,
                                              "burst_size": cfg.arrivals.burst_size // cfg.workers})
            self.times = list(share.times(self.count, cfg.duration, seed=self.index + 1))
            self.count = len(self.times)
        else:
            self.count = min(self.count, int(cfg.duration * self.rate))
        tmpl = self.templates()
        ndev = len(self.expected)
        per_conn = [tmpl[j * ndev:(j + 1) * ndev] for j in range(len(conns))]
        # A million devices are millions of tuples: one full collection walks them all (tens of ms in
        # which nothing is sent or timed, counted as the server's latency). Set them aside for good.
        gc.collect()
        gc.freeze()
        ticker = make_ticker(cfg.tick_for(self.rate))
        go()
        pack = _HEADER.pack
        pending = self.pending
        self.t0 = t0 = time.monotonic()
        # RFC 6733 §3: End-to-End ids start with the low 12 bits of the time and random low bits, so a run
        # started after another one against the same EIR is not answered from its duplicate cache (§5.5.4:
        # Origin-Host and End-to-End id seen within the window) with the earlier run's answers.
        e2e_base = ((int(time.time()) & 0xFFF) << 20) | random.getrandbits(20)
        i = 0
        last_report = 0.0
        last_sweep = 0.0
        last_flush = 0.0
        second = 0
        nconn = len(conns)
        max_in_flight = cfg.max_in_flight
        sample = cfg.pcap_sample
        stop_sending = cfg.duration + cfg.timeout
        sends = self.sends
        while i < self.count:
            now = time.monotonic() - t0
            if now > stop_sending:
                break  # the server cannot keep up: the run still ends by itself
            # Send everything due now, up to the window.
            while i < self.count and self.intended(i) <= now and len(pending) < max_in_flight:
                ci = i % nconn
                conn = conns[ci]
                head, tail = per_conn[ci][i // nconn % ndev]
                body = head + b"%010d" % i + tail
                hbh = i & 0xFFFFFFFF
                msg = pack(0x01000000 | (20 + len(body)), 0xC0000000 | 324, 16777252, hbh,
                           (e2e_base + i) & 0xFFFFFFFF) + body
                conn.out.append(msg)
                if sample and i % sample == 0 and len(self.samples) + len(self.sampling) < cfg.pcap_max:
                    self.sampling[hbh] = (self.share[ci], msg, time.time())
                pending[hbh] = i
                i += 1
                self.sent_ps[int(now)] += 1
            if not sends or sends[-1][1] != i:
                sends.append((now, i))
            for conn in conns:
                conn.flush()
            # HDR record_value costs 1-3 µs per distinct value: record each value once per 0.1 s with its
            # count (every 5 ms, as before, was 2 calls per answer at 20k/s, 8% of the generator's CPU), and
            # at each second's end, so per-second figures stay exact to one tick.
            if int(now) != second or now - last_flush >= 0.1:
                last_flush = now
                self.flush_latency(second)
                second = int(now)
            if now - last_sweep > 0.5:
                last_sweep = now
                self._sweep(now)
            if now - last_report > 0.5:
                last_report = now
                progress(self.snapshot(now))
            if all(c.closed for c in conns):
                break
            await ticker()
        ticker.close()
        self.sent = i
        end = time.monotonic() + cfg.timeout
        while pending and time.monotonic() < end:
            await asyncio.sleep(0.005)
            self.flush_latency()
        self.flush_latency()
        self.timeouts = len(pending)
        self.elapsed = time.monotonic() - t0
        for conn in conns:
            conn.disconnect()

    def _sweep(self, now: float) -> None:
        """Forget requests sent more than ``timeout`` + 1 s ago (they count as timeouts)."""
        limit = now - self.cfg.timeout - 1.0
        sends = self.sends
        cutoff = -1
        while sends and sends[0][0] < limit:
            cutoff = sends.popleft()[1]  # every request below this index was sent before ``limit``
        if cutoff < 0:
            return
        stale = [h for h, i in self.pending.items() if i < cutoff]
        for h in stale:
            del self.pending[h]
        self.swept += len(stale)

    def snapshot(self, now: float) -> dict[str, Any]:
        last = self.latency.per_second.get(int(now) - 1) or self.latency.per_second.get(int(now))
        return {"worker": self.index, "t": now, "sent": sum(self.sent_ps.values()), "answered": self.answered,
                "in_flight": len(self.pending), "answers": dict(self.answers),
                "latency": summarize(last) if last is not None else {}}

    def final(self) -> dict[str, Any]:
        return {"worker": self.index, "sent": self.sent, "answered": self.answered,
                "timeouts": self.timeouts + self.swept, "answers": dict(self.answers),
                "wrong": {k: dict(v) for k, v in self.wrong.items()}, "latency": self.latency.encode(),
                "sent_ps": dict(self.sent_ps), "ans_ps": dict(self.ans_ps), "elapsed": self.elapsed,
                "samples": self.samples}


def _worker_main(cfg: LoadConfig, index: int, out: Any, go: Any) -> None:
    w = _Worker(cfg, index)

    async def main() -> None:
        def ready() -> None:
            out.put(("ready", index, None))
            while not go.wait(0.05):
                pass

        await w.run(lambda snap: out.put(("progress", index, snap)), ready)

    try:
        run_fast(main())
        out.put(("final", index, w.final()))
    except Exception as e:  # reported to the parent, which fails the run
        out.put(("error", index, f"worker {index}: {type(e).__name__}: {e}"))


def run_load(cfg: LoadConfig, on_progress: Callable[[dict[int, dict[str, Any]]], None] | None = None) -> LoadResult:
    """Run the load in ``cfg.workers`` processes and merge their results (blocking)."""
    if cfg.mmes < cfg.workers:
        cfg = LoadConfig(**{**{f: getattr(cfg, f) for f in cfg.__dataclass_fields__}, "mmes": cfg.workers})
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    go = ctx.Event()
    procs = [ctx.Process(target=_worker_main, args=(cfg, w, out, go), daemon=True) for w in range(cfg.workers)]
    for p in procs:
        p.start()
    result = LoadResult(cfg)
    snaps: dict[int, dict[str, Any]] = {}
    ready = finals = 0
    deadline = time.monotonic() + cfg.duration + cfg.timeout + 60
    try:
        while finals < cfg.workers and time.monotonic() < deadline:
            try:
                kind, idx, payload = out.get(timeout=0.5)
            except queue.Empty:
                if not any(p.is_alive() for p in procs) and out.empty():
                    result.errors.append("workers exited without results")
                    break
                continue
            if kind == "ready":
                ready += 1
                if ready == cfg.workers:
                    go.set()
            elif kind == "progress":
                snaps[idx] = payload
                if on_progress is not None:
                    on_progress(snaps)
            elif kind == "error":
                result.errors.append(payload)
                finals += 1
                go.set()
            else:
                finals += 1
                result.sent += payload["sent"]
                result.answered += payload["answered"]
                result.timeouts += payload["timeouts"]
                result.answers.update(payload["answers"])
                for cat, row in payload["wrong"].items():
                    result.wrong.setdefault(cat, Counter()).update(row)
                result.latency.merge(LatencyRecorder.decode(payload["latency"]))
                result.sent_per_second.update({int(k): v for k, v in payload["sent_ps"].items()})
                result.answered_per_second.update({int(k): v for k, v in payload["ans_ps"].items()})
                result.elapsed = max(result.elapsed, payload["elapsed"])
                result.samples.extend(payload["samples"])
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
                p.join(timeout=2)
    return result
