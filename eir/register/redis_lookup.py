"""The EIR's hot path to Redis: batch lookups pipelined on one connection (single node, TCP or unix).

redis-py's asyncio client checks a connection out of its pool for every command, wraps it in retry
and timeout helpers and packs every key as an argument of its own: about 180 µs of client CPU per
lookup of 20 IMEIs here, most of the EIR's cost per cache miss. This channel keeps one connection
and sends each lookup as a single ``EVALSHA`` with one packed argument (``key,key,...``); the script
answers one string (``value,value,...``, empty for an unlisted IMEI), parsed by the same hiredis
reader redis-py uses. Lookups of concurrent tasks are pipelined: Redis answers one connection's
commands in order, so replies are matched to waiters first in, first out.

Failure handling: a request that gets no reply within ``timeout`` aborts the connection, which fails
every waiter with :class:`StoreUnavailable`; the next lookup reconnects. One timer per connection watches
the oldest request in flight (replies come in order, so it is the first that could expire), not one timer
per request: creating and cancelling a timer for each round trip cost more than a tenth of the channel's
CPU (``bench/redis_round_trip.py``). Redis restarted (script cache
empty): ``NOSCRIPT`` is answered by sending the script itself once.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import Sequence
from typing import Any, cast

import hiredis

from eir.register.store import StoreUnavailable

__all__ = ["LOOKUP_PACKED", "LookupChannel", "unpack_values"]

#: ARGV: buckets B, key prefix, "k1,k2,...". Same bucket/field arithmetic as ``codec.bucket_of``
#: (14-digit keys are exact in Lua's doubles). Stored values never contain a comma (``codec``).
LOOKUP_PACKED = """
local B = tonumber(ARGV[1])
local P = ARGV[2] .. ':i'
local out = {}
local i = 0
for key in string.gmatch(ARGV[3], "%d+") do
  local k = tonumber(key)
  local b = k % B
  local v = redis.call('HGET', P .. string.format('%d', b), string.format('%d', (k - b) / B))
  i = i + 1
  if v then out[i] = v else out[i] = '' end
end
return table.concat(out, ',')
"""
_SHA = hashlib.sha1(LOOKUP_PACKED.encode()).hexdigest().encode()


def unpack_values(reply: bytes, n: int, label: str) -> list[str | None]:
    """The values of a ``LOOKUP_PACKED`` reply for ``n`` keys (None where nothing is listed)."""
    values = reply.decode().split(",")
    if len(values) != n:
        raise StoreUnavailable(f"redis store {label}: {len(values)} values for {n} keys")
    return [v or None for v in values]


def _bulk(a: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(a), a)


def _command(*args: bytes) -> bytes:
    """One RESP array of bulk strings."""
    return b"*%d\r\n" % len(args) + b"".join(map(_bulk, args))


class _Resp(asyncio.Protocol):
    """One connection: requests written in order, replies handed to waiters in the same order; a request
    unanswered for ``timeout`` seconds aborts the connection."""

    def __init__(self, timeout: float) -> None:
        self.reader = hiredis.Reader()
        #: (waiter, loop time sent), oldest first.
        self.waiting: deque[tuple[asyncio.Future[Any], float]] = deque()
        self.transport: asyncio.Transport | None = None
        self.lost: str | None = None
        self.timeout = timeout
        self._loop = asyncio.get_running_loop()
        self._watchdog: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        try:
            while (reply := self.reader.gets()) is not False:
                fut = self.waiting.popleft()[0]
                if not fut.done():  # a waiter cancelled meanwhile
                    fut.set_result(reply)
        except (hiredis.ProtocolError, IndexError) as exc:  # not Redis, or a reply nobody asked for
            self.abort(f"bad reply stream: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = self.lost or f"connection lost: {exc or 'closed by the server'}"
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        while self.waiting:
            fut = self.waiting.popleft()[0]
            if not fut.done():
                fut.set_exception(StoreUnavailable(self.lost))

    def abort(self, why: str) -> None:
        self.lost = why
        if self.transport is not None:
            self.transport.abort()

    def request(self, payload: bytes) -> asyncio.Future[Any]:
        loop = self._loop
        fut: asyncio.Future[Any] = loop.create_future()
        if self.lost is not None or self.transport is None or self.transport.is_closing():
            fut.set_exception(StoreUnavailable(self.lost or "connection closed"))
            return fut
        self.waiting.append((fut, loop.time()))
        self.transport.write(payload)
        if self._watchdog is None:
            self._watchdog = loop.call_later(self.timeout, self._check)
        return fut

    def _check(self) -> None:
        """The watchdog: abort if the oldest request in flight has waited ``timeout``, else look again when
        it would have."""
        self._watchdog = None
        if not self.waiting or self.lost is not None:
            return
        due = self.waiting[0][1] + self.timeout
        if self._loop.time() >= due:
            self.abort(f"no reply within {self.timeout} s")  # replies come in order: the connection is stuck
        else:
            self._watchdog = self._loop.call_at(due, self._check)


class LookupChannel:
    """Pipelined batch lookups for :class:`eir.register.redis_store.RedisStore` (``redis://``, ``unix://``)."""

    def __init__(self, params: dict[str, Any], prefix: str, timeout: float, label: str) -> None:
        self.params = params
        self.prefix = prefix.encode()
        self.timeout = timeout
        self.label = label
        self._proto: _Resp | None = None
        self._connecting: asyncio.Lock | None = None
        #: The EVALSHA command up to its last argument, per bucket count.
        self._heads: dict[int, bytes] = {}

    async def lookup(self, keys: Sequence[str], buckets: int) -> list[str | None]:
        """The stored value of each 14-digit key (None when absent), in one round trip."""
        packed = ",".join(keys).encode()
        head = self._heads.get(buckets)
        if head is None:
            head = self._heads[buckets] = b"*6\r\n" + b"".join(
                map(_bulk, (b"EVALSHA", _SHA, b"0", str(buckets).encode(), self.prefix)))
        reply = await self._ask(head + _bulk(packed))
        if isinstance(reply, hiredis.ReplyError) and str(reply).startswith("NOSCRIPT"):
            reply = await self._ask(_command(b"EVAL", LOOKUP_PACKED.encode(), b"0", str(buckets).encode(),
                                             self.prefix, packed))
        if isinstance(reply, hiredis.ReplyError):
            raise StoreUnavailable(f"redis store {self.label}: lookup failed: {reply}")
        return unpack_values(reply, len(keys), self.label)

    async def _ask(self, payload: bytes) -> Any:
        proto = self._proto
        if proto is None or proto.lost is not None:
            proto = await self._connect()
        return await proto.request(payload)

    async def _connect(self) -> _Resp:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._proto is not None and self._proto.lost is None:
                return self._proto
            loop = asyncio.get_running_loop()
            p = self.params
            try:
                def factory() -> _Resp:
                    return _Resp(self.timeout)

                if "path" in p:
                    coro = loop.create_unix_connection(factory, p["path"])
                else:
                    coro = loop.create_connection(factory, p.get("host", "127.0.0.1"), p.get("port", 6379))
                _transport, proto = await asyncio.wait_for(coro, self.timeout)
            except (OSError, TimeoutError) as exc:
                raise StoreUnavailable(f"redis store {self.label}: {exc}") from exc
            hello: list[bytes] = []
            if p.get("password"):
                user = [p["username"].encode()] if p.get("username") else []
                hello.append(_command(b"AUTH", *user, str(p["password"]).encode()))
            if p.get("db"):
                hello.append(_command(b"SELECT", str(p["db"]).encode()))
            for payload in hello:
                fut = proto.request(payload)
                try:
                    reply = await asyncio.wait_for(fut, self.timeout)
                except TimeoutError as exc:
                    proto.abort("no answer to AUTH/SELECT")
                    raise StoreUnavailable(f"redis store {self.label}: no answer to AUTH/SELECT") from exc
                if isinstance(reply, hiredis.ReplyError):
                    proto.abort(str(reply))
                    raise StoreUnavailable(f"redis store {self.label}: {reply}")
            self._proto = proto
            return proto

    def close(self) -> None:
        if self._proto is not None and self._proto.transport is not None:
            self._proto.lost = "closed"
            self._proto.transport.close()
        self._proto = None
