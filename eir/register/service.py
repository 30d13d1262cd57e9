"""The decision service every front end calls (S13 now, MAP and N5g-eir later).

``EquipmentChecker.check_many`` answers a batch with at most one store round trip (one ``lookup`` for
all cache misses); cache hits need no store access at all, and :meth:`EquipmentChecker.check_cached`
answers a hit synchronously so a front end can reply at once and batch only the misses.

Rules (ranges, TACs, SVN rules) are held in process memory (:class:`RuleIndex`) and reloaded, and
cached IMEI entries invalidated, from the store's change feed (``Store.watch``); a change by any writer
reaches every running checker within a second. If the feed is interrupted the cache is not used until the
feed resumes (having replayed every change made meanwhile) or resyncs (the cache dropped). With
``replica_max_entries`` the cache is a full replica of the register (:mod:`eir.register.replica`), loaded at
each resync. If the store cannot be reached a decision with outcome
``STORE_UNAVAILABLE`` is returned (never an exception) so the front end applies its fail policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence

from eir.identity import Imei
from eir.register.audit import AuditRecord
from eir.register.cache import EntryCache
from eir.register.codec import plain_status
from eir.register.decision import CheckRequest, Decision, Outcome, Verdict
from eir.register.model import Entry, EntryError
from eir.register.policy import PLAIN_VERDICTS, UNAVAILABLE, Policy, decide, unavailable
from eir.register.replica import ReplicaCache
from eir.register.rules import RuleIndex
from eir.register.store import BULK_CHANGE_KEYS, Change, Store, StoreUnavailable

__all__ = ["Check", "CheckRequest", "Decision", "EquipmentChecker", "Outcome", "Policy", "Verdict"]

#: (14-digit IMEI key, IMSI, SVN, requester) of one check on a front end's hot path (see ``verdict_cached``).
Check = tuple[str, str | None, str | None, str | None]


def _plain_verdict(value: str) -> Verdict | None:
    """The verdict of a stored value in the compact form of one plain IMEI entry (None for anything else)."""
    st = plain_status(value)
    return None if st is None else PLAIN_VERDICTS[st]


log = logging.getLogger(__name__)
AUDIT_BUFFER_MAX = 100_000
START_SYNC_SECONDS = 2.0
STOP_SECONDS = 2.0
#: How often unsure keys of the replica (changed since it was loaded) are fetched, and how many at a time: 20k
#: a second, in batches small enough (a fraction of a millisecond of the loop) not to show much in the latency
#: of the requests answered meanwhile (a batch of 2,000 every 0.1 s put the p99 at 4-6 ms at 20k requests/s
#: while an import's 500k IMEIs settled; 500 every 25 ms, at about 2 ms). With nothing to fetch, the task
#: looks every IDLE_SECONDS.
REFRESH_SECONDS = 0.005
REFRESH_BATCH = 100
IDLE_SECONDS = 0.1


class EquipmentChecker:
    """Decides IMEI checks against a store. Use ``async with EquipmentChecker(store) as checker``."""

    def __init__(self, store: Store, policy: Policy | None = None, *, cache_size: int = 100_000,
                 replica_max_entries: int = 0, audit: bool = False,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.policy = policy or Policy()
        #: ``replica_max_entries`` > 0: hold every IMEI-level value (:mod:`eir.register.replica`) while the
        #: register holds at most that many.
        self.replica: ReplicaCache | None = (
            ReplicaCache(cache_size, replica_max_entries) if replica_max_entries > 0 else None)
        self.cache: EntryCache = self.replica if self.replica is not None else EntryCache(cache_size)
        self.audit = audit
        self.clock = clock
        self._rule_entries: list[Entry] | None = None
        self._rules: RuleIndex | None = None
        self._synced = False
        self._watch_task: asyncio.Task[None] | None = None
        self._replica_task: asyncio.Task[None] | None = None
        self._resynced = asyncio.Event()  # set at each resync of the feed (the replica loads again)
        self._audit_task: asyncio.Task[None] | None = None
        self._audit_buf: list[AuditRecord] = []
        self._first_sync = asyncio.Event()
        self._stopping = False
        self.audit_dropped = 0
        self.changes_seen = 0

    # ---- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Load the rules (if the store answers) and start following the change feed."""
        with contextlib.suppress(StoreUnavailable):
            await self._reload_rules()
        self._watch_task = asyncio.create_task(self._follow(), name="register-watch")
        with contextlib.suppress(TimeoutError):  # the feed's first resync turns the cache on
            await asyncio.wait_for(self._first_sync.wait(), START_SYNC_SECONDS)
        if self.audit:
            self._audit_task = asyncio.create_task(self._audit_loop(), name="register-audit")
        if self.replica is not None:
            self._replica_task = asyncio.create_task(self._replicate(self.replica), name="register-replica")

    async def stop(self) -> None:
        self._stopping = True
        if self._watch_task is not None:  # it ends at the next heartbeat of the feed (< 1 s)
            await asyncio.wait([self._watch_task], timeout=STOP_SECONDS)
        tasks = [t for t in (self._watch_task, self._audit_task, self._replica_task)
                 if t is not None and not t.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            # bounded: redis-py can leave a cancelled blocking read waiting on a dead connection
            _done, pending = await asyncio.wait(tasks, timeout=STOP_SECONDS)
            if pending:
                log.warning("register tasks did not stop within %.1f s: %s", STOP_SECONDS, pending)
        self._watch_task = self._audit_task = self._replica_task = None
        if self._audit_buf:
            with contextlib.suppress(StoreUnavailable):
                await self.flush_audit()

    async def __aenter__(self) -> EquipmentChecker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def synced(self) -> bool:
        """True while the change feed is followed (the cache is then trusted)."""
        return self._synced

    async def _reload_rules(self) -> None:
        entries = await self.store.rules()
        self._rule_entries = entries
        self._rules = RuleIndex.build(entries, self.clock())

    async def wrote(self, entry: Entry | None) -> None:
        """Make a write this process has just made visible to its own decisions now (read your writes), not
        only once the change feed brings it back (well within a second, but possibly after the writer's next
        request: an operator adding a TAC rule and checking an IMEI of it at once). ``None``: many entries,
        as after an import."""
        if entry is not None and not entry.is_rule:
            self.cache.invalidate((entry.key,))
            return
        if entry is None:  # many entries (an import): forget every cached value
            self.cache.invalidate(None)
        with contextlib.suppress(StoreUnavailable):  # the write is done; the feed reloads the rules later
            await self._reload_rules()

    async def _follow(self) -> None:
        agen = self.store.watch()
        try:
            async for change in agen:
                if self._stopping:
                    return
                if change.heartbeat:
                    continue
                if change.resumed:  # every change made while it was interrupted has been applied
                    log.info("register change feed resumed; cache trusted again")
                    self._synced = True
                    continue
                self._apply(change)
                if change.keys is not None and len(change.keys) > BULK_CHANGE_KEYS:
                    await asyncio.sleep(0)  # an import's chunk: let the requests that arrived meanwhile through
                if change.lost:
                    continue
                if change.rules:
                    try:
                        await self._reload_rules()
                    except StoreUnavailable:
                        self._synced = False
                        self.cache.invalidate(None)
                        continue
                if change.keys is None:
                    self._synced = True
                    self._first_sync.set()
                    self._resynced.set()
        finally:
            await agen.aclose()

    async def _replicate(self, replica: ReplicaCache) -> None:
        """Load the replica at each resync of the feed, and fetch its unsure keys in the meantime."""
        while not self._stopping:
            pause = REFRESH_SECONDS if replica.complete and replica.refresh_pending else IDLE_SECONDS
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._resynced.wait(), pause)
            if not self._synced:  # the feed is interrupted: nothing can be loaded or trusted until it is back
                await asyncio.sleep(IDLE_SECONDS)
            elif self._resynced.is_set():
                self._resynced.clear()
                if not await self._load_replica(replica):
                    self._resynced.set()  # interrupted: load again once the store answers (the feed may resume)
                    await asyncio.sleep(IDLE_SECONDS)
            elif replica.complete:
                await self._refresh_unsure(replica)

    async def _load_replica(self, replica: ReplicaCache) -> bool:
        """One load; False if the store failed during it (the caller tries again)."""
        started = time.perf_counter()
        load = replica.begin_load()
        try:
            async for chunk in self.store.scan_values():
                replica.add_loaded(load, chunk)
                if load.aborted:
                    break
        except StoreUnavailable as exc:
            log.warning("register replica: load interrupted: %s", exc)
            return False
        if load.too_big:
            log.warning("register replica: more than %d IMEI-level entries; working as a cache of %d instead",
                        replica.max_entries, replica.max_size)
        elif replica.finish_load(load):
            log.info("register replica: %d IMEI-level entries loaded in %.1f s (%d unsure)",
                     len(replica), time.perf_counter() - started, len(load.unsure))
        return True

    async def _refresh_unsure(self, replica: ReplicaCache) -> None:
        """Fetch keys changed since the replica was loaded, so that the next checks of them need no store."""
        keys = replica.take_unsure(REFRESH_BATCH)
        if not keys:
            return
        try:
            await self._fetch(keys)
        except StoreUnavailable:
            pass
        except EntryError:  # a corrupt value among them: settle the others; checks of it report it
            for k in keys:
                try:
                    await self._fetch([k])
                except EntryError:
                    replica.unsettled(k)
                except StoreUnavailable:
                    break
        finally:
            replica.requeue(keys)  # not settled (an invalidation while in flight, the store down): later

    @property
    def replica_complete(self) -> bool:
        """True while this checker holds a complete replica of the register (``replica_max_entries``)."""
        return self.replica is not None and self.replica.complete

    def _apply(self, change: Change) -> None:
        self.changes_seen += 1
        if change.lost:  # kept, not trusted: the feed resumes (and replays what changed meanwhile) or resyncs
            if self._synced:
                log.warning("register change feed lost; cache not used until it resumes or resyncs")
            self._synced = False
        else:
            complete = self.replica_complete
            self.cache.invalidate(change.keys)
            if complete and change.keys is not None and not self.replica_complete:
                self._resynced.set()  # dropped as too small for what the register may now hold: load again

    # ---- decisions ---------------------------------------------------------------------------
    def _index(self, now: float) -> RuleIndex | None:
        idx = self._rules
        if idx is not None and idx.stale(now) and self._rule_entries is not None:
            idx = self._rules = RuleIndex.build(self._rule_entries, now)
        return idx

    def check_cached(self, request: CheckRequest) -> Decision | None:
        """Answer from the cache without touching the store, or None on a miss."""
        if not self._synced:
            return None
        key = request.imei.key
        value = self.cache.get(key)
        if value is None:
            return None
        now = self.clock()
        idx = self._index(now)
        if idx is None:
            return None
        entries = self.store.decode(key, value) if value else ()
        d = decide(key, request.imsi, request.software_version, entries, idx, self.policy, now)
        if self.audit:
            self._record(request, d, now)
        return d

    async def check_many(self, requests: Sequence[CheckRequest], *, cached: bool = True) -> list[Decision]:
        """Decide a batch: cache hits at once, all misses in one store round trip. ``cached=False`` skips the
        cache probe (for requests that :meth:`check_cached` has just missed); results are still cached."""
        now = self.clock()
        try:
            idx = await self._ready_index(now)
        except StoreUnavailable as exc:
            return self._all_unavailable(requests, str(exc), now)
        out: list[Decision | None] = [None] * len(requests)
        misses: list[int] = []
        cache_get = self.cache.get if self._synced and cached else None
        policy = self.policy
        decode = self.store.decode
        for i, r in enumerate(requests):
            value = cache_get(r.imei.key) if cache_get is not None else None
            if value is None:
                misses.append(i)
            else:
                out[i] = decide(r.imei.key, r.imsi, r.software_version, decode(r.imei.key, value), idx, policy, now)
        if misses:
            try:
                by_key = await self._fetch([requests[i].imei.key for i in misses])
            except StoreUnavailable as exc:
                d = unavailable(str(exc))
                for i in misses:
                    out[i] = d
            else:
                for i in misses:
                    r = requests[i]
                    key = r.imei.key
                    out[i] = decide(key, r.imsi, r.software_version, decode(key, by_key[key]), idx, policy, now)
        result = [d for d in out if d is not None]
        if self.audit:
            for r, d in zip(requests, result, strict=True):
                self._record(r, d, now)
        return result

    async def _ready_index(self, now: float) -> RuleIndex:
        """The rule index, loaded from the store first if it never was (StoreUnavailable if it cannot be)."""
        idx = self._index(now)
        if idx is None:
            await self._reload_rules()
            idx = self._index(now)
            assert idx is not None
        return idx

    async def _fetch(self, keys: Sequence[str]) -> dict[str, str]:
        """Stored values of the keys (one round trip), cached unless the feed moved meanwhile."""
        keys = list(dict.fromkeys(keys))
        epoch, synced = self.cache.epoch, self._synced
        values = await self.store.lookup_values(keys)
        if synced and self._synced:
            self.cache.put_many(zip(keys, values, strict=True), epoch)
        return dict(zip(keys, values, strict=True))

    # ---- verdicts: the hot path of a front end that sends only outcome and status ----------------
    def verdict_cached(self, key: str, imsi: str | None = None, svn: str | None = None,
                       requester: str | None = None) -> Verdict | None:
        """:meth:`check_cached` for a front end that sends only the outcome and the status (an S13 ECA), or
        None on a miss. A hit on a plain IMEI entry, the bulk of any block list, is answered from the cached
        value's status bits (:data:`~eir.register.policy.PLAIN_VERDICTS`) without building entries or a
        decision; anything else is decided in full. With audit on, every check is decided and recorded."""
        if self.audit:
            d = self.check_cached(CheckRequest(Imei(key), imsi, svn, requester))
            return None if d is None else d.verdict
        if not self._synced:
            return None
        value = self.cache.get(key)
        if value is None:
            return None
        quick = self._quick_verdict(value)
        if quick is not None:
            return quick
        now = self.clock()
        idx = self._index(now)
        if idx is None:
            return None
        return decide(key, imsi, svn, self.store.decode(key, value), idx, self.policy, now).verdict

    async def verdicts(self, checks: Sequence[Check]) -> list[Verdict]:
        """Verdicts of checks that :meth:`verdict_cached` has just missed: one store round trip for all of
        them, results cached; :data:`~eir.register.policy.UNAVAILABLE` if the store cannot be reached."""
        if self.audit:
            requests = [CheckRequest(Imei(k), imsi, svn, who) for k, imsi, svn, who in checks]
            return [d.verdict for d in await self.check_many(requests, cached=False)]
        now = self.clock()
        try:
            idx = self._index(now)
            if idx is None:  # not loaded yet (no coroutine on the hot path when it is)
                idx = await self._ready_index(now)
            by_key = await self._fetch([c[0] for c in checks])
        except StoreUnavailable:
            return [UNAVAILABLE] * len(checks)
        out: list[Verdict] = []
        policy, decode = self.policy, self.store.decode
        for key, imsi, svn, _ in checks:
            value = by_key[key]
            out.append(self._quick_verdict(value) or decide(key, imsi, svn, decode(key, value), idx, policy,
                                                            now).verdict)
        return out

    def _quick_verdict(self, value: str) -> Verdict | None:
        """The verdict of a stored value that needs no decision, or None: a plain IMEI entry (its status bits,
        :data:`~eir.register.policy.PLAIN_VERDICTS`), or nothing listed while there is no rule that could
        match (the policy's unknown equipment: most checks of a real network, of devices on no list)."""
        if value:
            return _plain_verdict(value)
        rules = self._rules
        return self.policy.unknown_verdict if rules is not None and not rules.size else None

    async def check(self, request: CheckRequest) -> Decision:
        """Decide one request (prefer :meth:`check_many` for throughput)."""
        return (await self.check_many([request]))[0]

    def _all_unavailable(self, requests: Sequence[CheckRequest], why: str, now: float) -> list[Decision]:
        d = unavailable(why)
        if self.audit:
            for r in requests:
                self._record(r, d, now)
        return [d] * len(requests)

    # ---- audit ---------------------------------------------------------------------------------
    def _record(self, request: CheckRequest, decision: Decision, now: float) -> None:
        if len(self._audit_buf) >= AUDIT_BUFFER_MAX:
            self.audit_dropped += 1
            return
        self._audit_buf.append(AuditRecord.of(request, decision, now))

    async def flush_audit(self) -> None:
        """Write buffered audit records to the store (kept in the buffer if it is unavailable)."""
        buf, self._audit_buf = self._audit_buf, []
        try:
            await self.store.audit_append(buf)
        except StoreUnavailable:
            self._audit_buf = buf + self._audit_buf
            raise

    async def _audit_loop(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            if self._audit_buf:
                with contextlib.suppress(StoreUnavailable):
                    await self.flush_audit()
