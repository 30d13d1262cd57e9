"""The Redis store (redis-py asyncio + hiredis): ``redis://``, ``unix://`` and ``redis+cluster://``.

Key schema (``P`` is the prefix, default ``eir``; ``{P}`` keys share one cluster slot):

* ``P:i<bucket>`` hash, one per bucket: field ``key div B`` -> encoded IMEI-level value (``codec``),
  ``bucket = key mod B``; B (``buckets``, fixed when the register is created) is chosen so buckets
  hold at most 128 small fields and stay listpack-encoded (about 20 bytes per listed IMEI);
* ``{P}:meta`` hash (buckets, reporter counter), ``{P}:reporters`` hash name -> id,
  ``{P}:rules`` hash ident -> rule JSON (ranges, TACs, TAC+SVN rules),
  ``{P}:changes`` stream (capped) of changed IMEI keys / ``*`` / ``#rules``, read by every EIR;
* ``P:audit`` stream (capped) of decisions.

A batch lookup is one ``EVALSHA`` running HGET per key inside Redis (one round trip), sent on a
pipelined connection of its own (:mod:`eir.register.redis_lookup`, the EIR's hot path); on a cluster
it is one pipeline of HGETs, sent to each node in parallel (one round trip per node). Writes are
compare-and-set scripts that also append to the change stream atomically (single node). Connection
errors become :class:`StoreUnavailable`; redis-py reconnects by itself on the next call.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Sequence
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis import exceptions as rexc
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from eir.register.audit import AUDIT_FIELDS, AuditRecord
from eir.register.codec import bucket_of, key_of
from eir.register.redis_lookup import LOOKUP_PACKED, LookupChannel, unpack_values
from eir.register.store import (
    BULK_CHANGE_KEYS,
    CHANGE_KEYS_MAX,
    Change,
    Store,
    StoreConfigError,
    StoreUnavailable,
    change_of,
)

__all__ = ["DEFAULT_BUCKETS", "RedisStore"]

DEFAULT_BUCKETS = 1 << 18
CHANGES_MAXLEN = 100_000
#: A bulk change entry (more than ``store.BULK_CHANGE_KEYS`` IMEIs, an import chunk's: up to
#: ``CHANGE_KEYS_MAX``, 75 KB) caps the stream at CHANGES_MAXLEN_BULK entries instead, so that the stream stays
#: under about 15 MB however much is imported. A reader that falls that far behind during an import resyncs,
#: as any reader that the cap overtakes (:meth:`RedisStore._trimmed_after`).
CHANGES_MAXLEN_BULK = 200
WATCH_BLOCK_MS = 300
#: Entries per XREAD: a reply is at most WATCH_COUNT bulk entries (7.5 MB).
WATCH_COUNT = 100
_CONN_ERRORS = (rexc.ConnectionError, rexc.TimeoutError, OSError, rexc.ClusterDownError)


def changes_maxlen(change: str) -> int:
    """The stream cap to write change entry ``change`` with (see ``CHANGES_MAXLEN_BULK``)."""
    return CHANGES_MAXLEN_BULK if change.count(",") >= BULK_CHANGE_KEYS else CHANGES_MAXLEN

# Single node only (buckets are computed here, so they are not declared keys; a cluster compares and sets
# with separate commands). KEYS: the change stream. ARGV: maxlen, change, buckets B, key prefix, then one
# string of lines "imei_key,expected,new" (expected/new empty = absent/delete).
_CAS_PACKED = """
local B = tonumber(ARGV[3])
local failed = {}
local changed = 0
local i = 0
for key, old, new in string.gmatch(ARGV[5], "(%d+),([^,\\n]*),([^,\\n]*)") do
  local k = tonumber(key)
  local b = k % B
  local bucket = ARGV[4] .. ':i' .. string.format('%d', b)
  local field = string.format('%d', (k - b) / B)
  local cur = redis.call('HGET', bucket, field)
  if cur == false then cur = '' end
  if cur ~= old then
    failed[#failed + 1] = i
  else
    if new == '' then redis.call('HDEL', bucket, field) else redis.call('HSET', bucket, field, new) end
    changed = changed + 1
  end
  i = i + 1
end
if changed > 0 then redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'k', ARGV[2]) end
return failed
"""

# Bulk import of new keys (single node). KEYS: the change stream. ARGV: maxlen, change, then one string of
# lines "bucket key,field,value" (computed by the client: string work is what costs most in Lua, and Redis
# is the bottleneck of an import). HSETNX: a key that already has a value is left alone and reported.
_ADD_NEW = """
local failed = {}
local i = 0
for b, f, v in string.gmatch(ARGV[3], "([^,\\n]+),(%d+),([^\\n]+)") do
  if redis.call('HSETNX', b, f, v) == 0 then failed[#failed + 1] = i end
  i = i + 1
end
if i > #failed then redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'k', ARGV[2]) end
return failed
"""

# Read buckets [ARGV[1], ARGV[2]) of B = ARGV[3] under prefix ARGV[4] (single node; buckets are not declared
# keys, as in the lookup script): one string "key,value,key,value,..." with each field turned back into its
# 14-digit IMEI key (exact in Lua's doubles). One reply string instead of a dict per bucket: loading a replica
# of 1M IMEIs took 14 s of the EIR's CPU with HGETALL pipelines.
_SCAN_PACKED = """
local B = tonumber(ARGV[3])
local out = {}
for b = tonumber(ARGV[1]), tonumber(ARGV[2]) - 1 do
  local kv = redis.call('HGETALL', ARGV[4] .. ':i' .. string.format('%d', b))
  for i = 1, #kv, 2 do
    out[#out + 1] = string.format('%014d', tonumber(kv[i]) * B + b)
    out[#out + 1] = kv[i + 1]
  end
end
return table.concat(out, ',')
"""

# KEYS: rules hash, change stream. ARGV: ident, expected, new, maxlen.
_CAS_RULE = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur == false then cur = '' end
if cur ~= ARGV[2] then return 0 end
if ARGV[3] == '' then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'k', '#rules')
return 1
"""

# KEYS: reporters hash, meta hash. ARGV: name.
_INTERN = """
local id = redis.call('HGET', KEYS[1], ARGV[1])
if id then return tonumber(id) end
id = redis.call('HINCRBY', KEYS[2], 'next_reporter', 1)
redis.call('HSET', KEYS[1], ARGV[1], id)
return id
"""


def _stream_id(text: str) -> tuple[int, int]:
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def _parse_url(url: str) -> tuple[str, str, dict[str, str]]:
    """Split our options (prefix, buckets, ...) off the URL; return (scheme, clean url, options)."""
    parts = urlsplit(url)
    opts = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    known = {"prefix", "buckets", "audit_maxlen", "max_connections", "timeout", "db"}
    unknown = set(opts) - known
    if unknown:
        raise StoreConfigError(f"store URL {url!r}: unknown option(s) {sorted(unknown)}; known: {sorted(known)}")
    if parts.scheme == "unix":
        clean = f"unix://{parts.path}" + (f"?db={opts['db']}" if "db" in opts else "")
    else:
        clean = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    return parts.scheme, clean, opts


def _int_opt(opts: dict[str, str], key: str, default: int, url: str) -> int:
    try:
        v = int(opts.get(key, default))
    except ValueError:
        raise StoreConfigError(f"store URL {url!r}: option {key}={opts[key]!r} is not an integer") from None
    if v <= 0:
        raise StoreConfigError(f"store URL {url!r}: option {key} must be positive")
    return v


class RedisStore(Store):
    """Register in Redis or Redis Cluster (see the module docstring for the key schema)."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        scheme, clean, opts = _parse_url(url)
        self.prefix = opts.get("prefix", "eir")
        if not self.prefix or any(c in self.prefix for c in "{}: "):
            raise StoreConfigError(
                f"store URL {url!r}: option prefix={self.prefix!r} must be non-empty without {{}}: or space"
            )
        self._want_buckets = _int_opt(opts, "buckets", DEFAULT_BUCKETS, url)
        self.audit_maxlen = _int_opt(opts, "audit_maxlen", 1_000_000, url)
        timeout = float(opts.get("timeout", "2"))
        maxconn = _int_opt(opts, "max_connections", 32, url)
        self.cluster = scheme == "redis+cluster"
        common: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout,
                                  "retry": Retry(NoBackoff(), 0)}
        self._r: Any
        self._watch_r: Any
        self._channel: LookupChannel | None = None
        if self.cluster:
            host, port = urlsplit(clean).hostname or "127.0.0.1", urlsplit(clean).port or 6379
            self._r = RedisCluster(host=host, port=port, max_connections=maxconn, **common)
            self._watch_r = self._r
        elif scheme in ("redis", "rediss", "unix"):
            pool = aioredis.BlockingConnectionPool.from_url(clean, max_connections=maxconn, timeout=timeout, **common)
            self._r = aioredis.Redis(connection_pool=pool)
            wpool = aioredis.ConnectionPool.from_url(clean, max_connections=2, **common)
            self._watch_r = aioredis.Redis(connection_pool=wpool)
            if scheme != "rediss":  # TLS lookups stay on redis-py
                self._channel = LookupChannel(dict(parse_url(clean)), self.prefix, timeout, url)
        else:
            raise StoreConfigError(f"store URL {url!r}: scheme {scheme!r} is not redis, unix or redis+cluster")
        p = self.prefix
        self.k_meta, self.k_reporters = f"{{{p}}}:meta", f"{{{p}}}:reporters"
        self.k_rules, self.k_changes = f"{{{p}}}:rules", f"{{{p}}}:changes"
        self.k_audit = f"{p}:audit"
        self.buckets = 0
        self._lookup = self._r.register_script(LOOKUP_PACKED)  # TLS (rediss://): the channel's script via redis-py
        self._cas_packed = self._r.register_script(_CAS_PACKED)
        self._add_new = self._r.register_script(_ADD_NEW)
        self._cas_rule_s = self._r.register_script(_CAS_RULE)
        self._intern_s = self._r.register_script(_INTERN)
        self._scan_packed = self._r.register_script(_SCAN_PACKED)

    def bucket_key(self, bucket: int) -> str:
        return f"{self.prefix}:i{bucket}"

    async def _call(self, aw: Awaitable[Any]) -> Any:
        try:
            return await aw
        except _CONN_ERRORS as exc:
            raise StoreUnavailable(f"redis store {self.url}: {exc}") from exc

    async def _ready(self) -> None:
        if self.buckets:
            return
        await self._call(self._r.hsetnx(self.k_meta, "buckets", self._want_buckets))
        self.buckets = int(await self._call(self._r.hget(self.k_meta, "buckets")))
        await self._load_reporters()

    def _locate(self, key: str) -> tuple[str, str]:
        b, f = bucket_of(int(key), self.buckets)
        return self.bucket_key(b), str(f)

    # ---- primitives --------------------------------------------------------------------------
    async def _read_values(self, keys: Sequence[str]) -> list[str | None]:
        if not self.buckets:
            await self._ready()
        if not keys:
            return []
        if self._channel is not None:
            return await self._channel.lookup(keys, self.buckets)
        if not self.cluster:
            packed = await self._call(self._lookup(args=[self.buckets, self.prefix, ",".join(keys)]))
            return unpack_values(packed, len(keys), self.url)
        pipe = self._r.pipeline()
        for b, f in (self._locate(k) for k in keys):
            pipe.hget(b, f)
        raw = await self._call(pipe.execute())
        return [None if v is None else v.decode() for v in raw]

    async def _cas_values(self, ops: Sequence[tuple[str, str | None, str | None]], change: str) -> list[int]:
        await self._ready()
        if not self.cluster:
            packed = "\n".join([f"{k},{old or ''},{new or ''}" for k, old, new in ops])
            res = await self._call(self._cas_packed(
                keys=[self.k_changes], args=[changes_maxlen(change), change, self.buckets, self.prefix, packed]))
            return [int(i) for i in res]
        locs = [self._locate(k) for k, _, _ in ops]
        # Cluster: buckets live in different slots, so compare then set per op (not atomic across ops).
        pipe = self._r.pipeline()
        for b, f in locs:
            pipe.hget(b, f)
        cur = await self._call(pipe.execute())
        failed = [i for i, (v, op) in enumerate(zip(cur, ops, strict=True)) if (v.decode() if v else None) != op[1]]
        bad = set(failed)
        pipe = self._r.pipeline()
        for i, ((b, f), (_, _, new)) in enumerate(zip(locs, ops, strict=True)):
            if i not in bad:
                pipe.hdel(b, f) if new is None else pipe.hset(b, f, new)
        if len(bad) < len(ops):
            await self._call(pipe.execute())
            await self._publish(change)
        return failed

    async def _publish(self, change: str) -> None:
        """Append a change entry (the scripts of a single node append theirs themselves)."""
        await self._call(self._r.xadd(self.k_changes, {"k": change}, maxlen=changes_maxlen(change), approximate=True))

    async def add_new_values(self, keys: Sequence[str], values: Sequence[str], *,
                             after: Awaitable[object] | None = None) -> list[int]:
        await self._ready()
        if not keys:
            if after is not None:
                await after
            return []
        buckets = self.buckets
        change = change_of(keys)
        if self.cluster:  # buckets live in different slots: one HSETNX each, pipelined per node
            pipe = self._r.pipeline()
            for k, v in zip(keys, values, strict=True):
                field, bucket = divmod(int(k), buckets)
                pipe.hsetnx(self.bucket_key(bucket), str(field), v)
            if after is not None:
                await after
            done = await self._call(pipe.execute())
            failed = [i for i, ok in enumerate(done) if not ok]
            if len(failed) < len(keys):
                await self._publish(change)
            return failed
        lines = []
        prefix = f"{self.prefix}:i"
        for k, v in zip(keys, values, strict=True):
            field, bucket = divmod(int(k), buckets)
            lines.append(f"{prefix}{bucket},{field},{v}")
        packed = "\n".join(lines)
        if after is not None:
            await after
        res = await self._call(self._add_new(keys=[self.k_changes],
                                             args=[changes_maxlen(change), change, packed]))
        return [int(i) for i in res]

    async def _read_rules(self) -> dict[str, str]:
        raw = await self._call(self._r.hgetall(self.k_rules))
        return {k.decode(): v.decode() for k, v in raw.items()}

    async def _read_rule(self, ident: str) -> str | None:
        raw = await self._call(self._r.hget(self.k_rules, ident))
        return None if raw is None else str(raw.decode())

    async def _cas_rule(self, ident: str, expected: str | None, new: str | None) -> bool:
        res = await self._call(self._cas_rule_s(keys=[self.k_rules, self.k_changes],
                                                args=[ident, expected or "", new or "", CHANGES_MAXLEN]))
        return bool(res)

    async def _intern(self, name: str) -> int:
        return int(await self._call(self._intern_s(keys=[self.k_reporters, self.k_meta], args=[name])))

    async def _load_reporters(self) -> None:
        raw = await self._call(self._r.hgetall(self.k_reporters))
        for name, rid in raw.items():
            self.reporters.add(int(rid), name.decode())

    async def _scan_values(self) -> AsyncIterator[list[tuple[str, str]]]:
        await self._ready()
        step = 256  # buckets per round trip: ~1k values, a few ms of the loop each (a replica loads while serving)
        if not self.cluster:
            for start in range(0, self.buckets, step):
                end = min(start + step, self.buckets)
                packed = await self._call(self._scan_packed(args=[start, end, self.buckets, self.prefix]))
                if packed:
                    it = iter(packed.decode().split(","))
                    yield list(zip(it, it, strict=True))
            return
        for start in range(0, self.buckets, step):  # a cluster: buckets live on different nodes
            pipe = self._r.pipeline()
            bs = range(start, min(start + step, self.buckets))
            for b in bs:
                pipe.hgetall(self.bucket_key(b))
            chunk: list[tuple[str, str]] = []
            for b, raw in zip(bs, await self._call(pipe.execute()), strict=True):
                chunk.extend((key_of(b, int(f), self.buckets), v.decode()) for f, v in raw.items())
            if chunk:
                yield chunk

    async def _tail(self) -> str:
        last = await self._call(self._watch_r.xrevrange(self.k_changes, count=1))
        return cast(str, last[0][0].decode()) if last else "0-0"

    async def _run_id(self) -> str | None:
        """The Redis server's run id (new at every start), or None on a cluster (the feed then never resumes)."""
        if self.cluster:
            return None
        return str((await self._call(self._watch_r.info("server")))["run_id"])

    async def _can_resume(self, last: str, run_id: str | None) -> bool:
        """True if the stream still holds every change after ``last``: same server run (a restart may have lost
        data the stream never mentions), stream present unless nothing was ever read, nothing trimmed."""
        if run_id is None or await self._run_id() != run_id:
            return False
        if not await self._call(self._watch_r.exists(self.k_changes)):
            return last == "0-0"
        info = await self._call(self._watch_r.xinfo_stream(self.k_changes))
        newest = info.get("last-generated-id")
        if newest is not None and _stream_id(newest.decode() if isinstance(newest, bytes) else str(newest)) < \
                _stream_id(last):
            return False  # the stream was deleted and written again
        return not await self._trimmed_after(last)

    async def watch(self) -> AsyncGenerator[Change, None]:
        """Yield a resync first, then changes read from the ``{P}:changes`` stream (XREAD BLOCK).

        Interrupted (connection error or timeout): yields ``lost``, reconnects, and resumes from the last change
        read if the stream still holds everything since (:meth:`_can_resume`), yielding the changes missed and
        then ``resumed``; otherwise resyncs. A short interruption (an EIR too busy to read the feed in time)
        thus costs its followers no cache and no replica."""
        last: str | None = None
        run_id: str | None = None
        resuming = False
        while True:
            try:
                if resuming and last is not None and not await self._can_resume(last, run_id):
                    last, resuming = None, False
                if last is None:
                    run_id = await self._run_id()
                    last = await self._tail()
                    self.buckets = 0
                    await self._ready()
                    yield Change(None, rules=True)
                res = await self._call(self._watch_r.xread({self.k_changes: last}, block=WATCH_BLOCK_MS,
                                                            count=WATCH_COUNT))
                # A full batch: this reader is behind, and the capped stream may have dropped changes it never
                # read. Then it starts afresh (everything invalidated, rules reloaded) rather than miss them.
                full = any(len(items) >= WATCH_COUNT for _s, items in res or ())
                gap = full and await self._trimmed_after(last)
            except StoreUnavailable:
                resuming = last is not None
                yield Change(None, rules=True, lost=True)
                await asyncio.sleep(0.2)
                continue
            if not res and not resuming:
                yield Change(frozenset())  # heartbeat
            for _stream, items in res or ():
                keys: set[str] = set()
                rules = False
                everything = False
                for i, (mid, fields) in enumerate(items):
                    last = mid.decode()
                    k = fields.get(b"k", b"").decode()
                    if k == "#rules":
                        rules = True
                    elif k == "*":
                        everything = True
                    elif k:
                        keys.update(k.split(","))
                    if len(keys) >= CHANGE_KEYS_MAX and not gap and not everything and i < len(items) - 1:
                        # An import's entries, read together: one change each, not one of 500k keys (applying
                        # that held the loop for 100 ms; the follower yields between changes).
                        yield Change(frozenset(keys), rules=rules)
                        keys, rules = set(), False
                if gap:
                    everything = rules = True
                yield Change(None if everything else frozenset(keys), rules=rules)
            if resuming and not full:  # caught up with what was missed
                resuming = False
                yield Change(frozenset(), resumed=True)

    async def _trimmed_after(self, last: str) -> bool:
        """True if the change stream's oldest entry is newer than ``last``: entries after ``last`` may be gone
        (possibly a false alarm when ``last`` itself was the only one trimmed; a resync is then harmless)."""
        if not await self._call(self._watch_r.exists(self.k_changes)):
            return False
        first = (await self._call(self._watch_r.xinfo_stream(self.k_changes))).get("first-entry")
        if not first:
            return False
        fid = first[0].decode() if isinstance(first[0], bytes) else str(first[0])
        return _stream_id(fid) > _stream_id(last)

    async def audit_append(self, records: Sequence[AuditRecord]) -> None:
        if not records:
            return
        pipe = self._r.pipeline(transaction=False) if not self.cluster else self._r.pipeline()
        for r in records:
            pipe.xadd(self.k_audit, r.as_dict(), maxlen=self.audit_maxlen, approximate=True)
        await self._call(pipe.execute())

    async def audit_export(self) -> AsyncIterator[AuditRecord]:
        start = "-"
        while True:
            items = await self._call(self._r.xrange(self.k_audit, min=start, count=10_000))
            if not items:
                return
            for _mid, fields in items:
                yield AuditRecord.from_dict({k: fields.get(k.encode(), b"").decode() for k in AUDIT_FIELDS})
            start = "(" + items[-1][0].decode()

    async def ping(self) -> None:
        await self._call(self._r.ping())

    async def close(self) -> None:
        if self.cluster:
            await self._r.aclose()
        else:
            if self._channel is not None:
                self._channel.close()
            await self._r.aclose()
            await self._watch_r.aclose()

    async def stats(self) -> dict[str, int]:
        await self._ready()
        info = await self._call(self._r.info("memory"))
        if self.cluster:
            used = sum(int(v["used_memory"]) for v in info.values()) if isinstance(info, dict) and all(
                isinstance(v, dict) for v in info.values()) else int(info["used_memory"])
        else:
            used = int(info["used_memory"])
        rules = await self._call(self._r.hlen(self.k_rules))
        return {"buckets": self.buckets, "rules": int(rules), "used_memory": used}

    async def flush_prefix(self) -> None:
        """Delete every key of this prefix (tests and benchmarks), bucket by bucket, never KEYS."""
        await self._ready()
        keys = [self.k_meta, self.k_reporters, self.k_rules, self.k_changes, self.k_audit]
        for k in keys:
            await self._call(self._r.delete(k))
        for start in range(0, self.buckets, 5000):
            chunk = [self.bucket_key(b) for b in range(start, min(start + 5000, self.buckets))]
            if self.cluster:
                pipe = self._r.pipeline()
                for k in chunk:
                    pipe.delete(k)
                await self._call(pipe.execute())
            else:
                await self._call(self._r.unlink(*chunk))
        self.buckets = 0
        self.reporters.by_id, self.reporters.by_name = {0: ""}, {"": 0}
