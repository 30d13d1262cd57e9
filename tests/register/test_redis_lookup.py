"""The pipelined lookup channel (``eir.register.redis_lookup``) against a real redis-server."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import hiredis
import pytest
import redis.asyncio as aioredis

from eir.register.codec import bucket_of
from eir.register.importer import IMPORT_CHUNK
from eir.register.model import Entry, Status
from eir.register.redis_store import (
    CHANGES_MAXLEN,
    CHANGES_MAXLEN_BULK,
    WATCH_COUNT,
    RedisStore,
    changes_maxlen,
)
from eir.register.store import BULK_CHANGE_KEYS, CHANGE_KEYS_MAX, StoreUnavailable, change_of
from tests.register.conftest import unique_prefix
from tests.support.servers import RedisServer, start_redis

pytestmark = pytest.mark.redis


def _keys(n: int, seed: int = 1) -> list[str]:
    rnd = random.Random(seed)
    return [f"{k:014d}" for k in rnd.sample(range(35_000_000_000_000, 36_000_000_000_000), n)]


async def _listed(store: RedisStore, keys: list[str]) -> None:
    await store.put_many([Entry.imei(k, Status.BLACK, reporter="ORG1") for k in keys], force=True)


async def test_concurrent_lookups_share_one_connection_and_get_their_own_replies(redis_server: RedisServer) -> None:
    store = RedisStore(f"{redis_server.url}?prefix={unique_prefix()}&buckets=1024")
    try:
        keys = _keys(3000)
        listed = set(keys[::2])
        await _listed(store, sorted(listed))
        batches = [keys[i:i + 37] for i in range(0, len(keys), 37)]
        results = await asyncio.gather(*(store._read_values(b) for b in batches))  # pipelined
        for batch, values in zip(batches, results, strict=True):
            assert [v is not None for v in values] == [k in listed for k in batch]
        # the values are the store's own (same as one HGET per key with the schema's bucket arithmetic)
        raw = aioredis.Redis.from_url(redis_server.url)
        for k, v in zip(batches[0], results[0], strict=True):
            b, f = bucket_of(int(k), store.buckets)
            want = await raw.hget(store.bucket_key(b), str(f))
            assert v == (want.decode() if want is not None else None)
        await raw.aclose()
        assert store._channel is not None and store._channel._proto is not None
        assert not store._channel._proto.waiting
    finally:
        await store.flush_prefix()
        await store.close()


async def test_without_the_channel_redis_py_gives_the_same_values(redis_server: RedisServer) -> None:
    """rediss:// (TLS) lookups go through redis-py with the same script: checked here over plain TCP."""
    store = RedisStore(f"{redis_server.url}?prefix={unique_prefix()}&buckets=256")
    try:
        keys = _keys(500, seed=3)
        await _listed(store, keys[::3])
        with_channel = await store._read_values(keys)
        assert store._channel is not None
        store._channel.close()
        store._channel = None
        assert await store._read_values(keys) == with_channel
        assert [v is not None for v in with_channel] == [i % 3 == 0 for i in range(len(keys))]
    finally:
        await store.flush_prefix()
        await store.close()


async def test_script_flushed_or_redis_restarted_is_recovered_from(tmp_path: Path) -> None:
    with start_redis(tmp_path / "r") as server:
        store = RedisStore(f"{server.url}?prefix=p&buckets=64&timeout=1")
        try:
            keys = _keys(10)
            await _listed(store, keys[:5])
            assert [v is not None for v in await store._read_values(keys)] == [True] * 5 + [False] * 5
            raw = aioredis.Redis.from_url(server.url)
            await raw.script_flush()  # NOSCRIPT: the channel sends the script itself
            assert [v is not None for v in await store._read_values(keys)] == [True] * 5 + [False] * 5
            await raw.aclose()
            server.stop()
            with pytest.raises(StoreUnavailable):
                await store._read_values(keys)
            server.restart()  # empty (nothing persisted), reconnected by the next lookup
            store.buckets = 0
            await _listed(store, keys[5:])
            assert [v is not None for v in await store._read_values(keys)] == [False] * 5 + [True] * 5
        finally:
            await store.close()


async def test_unix_socket_and_database_selection(redis_server: RedisServer) -> None:
    prefix = unique_prefix()
    in_db3 = RedisStore(f"unix://{redis_server.unix_path}?db=3&prefix={prefix}&buckets=64")
    in_db0 = RedisStore(f"{redis_server.url}?prefix={prefix}&buckets=64")
    try:
        keys = _keys(4)
        await _listed(in_db3, keys)
        assert all(v is not None for v in await in_db3._read_values(keys))
        assert await in_db0._read_values(keys) == [None] * 4
    finally:
        await in_db3.flush_prefix()
        await in_db0.flush_prefix()
        await in_db3.close()
        await in_db0.close()


async def _close_fake(store: RedisStore, server: asyncio.Server, writers: list[asyncio.StreamWriter]) -> None:
    """Close the store's channel and a scripted stand-in for Redis."""
    if store._channel is not None:
        store._channel.close()
    for w in writers:
        w.close()
    server.close()
    await server.wait_closed()


async def test_a_server_that_never_answers_gives_store_unavailable_within_the_timeout() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def silent(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        accepted.append(w)  # reads nothing, answers nothing

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    store = RedisStore(f"redis://127.0.0.1:{port}/0?timeout=0.3")
    store.buckets = 64  # skip the meta read, which would go through redis-py
    try:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        results = await asyncio.gather(*(store._read_values(_keys(3, s)) for s in range(3)), return_exceptions=True)
        assert all(isinstance(r, StoreUnavailable) for r in results), results
        assert loop.time() - t0 < 5  # bounded by the timeout (generous: this is not a timing test)
        assert "no reply within" in str(results[0])
    finally:
        await _close_fake(store, server, accepted)


async def test_the_timeout_counts_from_when_each_request_was_sent() -> None:
    """One watchdog per connection, not one timer per request: a request sent after an earlier one must still
    get its whole timeout (the watchdog armed for the earlier one must not cut it off), and a request that
    is never answered still fails once its own timeout has passed."""
    delays: list[float | None] = [0.0, 0.5, None]  # first at once, second after 0.5 s, third never
    writers: list[asyncio.StreamWriter] = []

    async def scripted(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        writers.append(w)
        reader = hiredis.Reader()
        n = 0
        while data := await r.read(65536):
            reader.feed(data)
            while reader.gets() is not False:
                delay = delays[n] if n < len(delays) else None
                n += 1
                if delay is not None:
                    await asyncio.sleep(delay)
                    w.write(b"$0\r\n\r\n")  # one empty value: the key is not listed

    server = await asyncio.start_server(scripted, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    store = RedisStore(f"redis://127.0.0.1:{port}/0?timeout=1.0")
    store.buckets = 64  # skip the meta read, which would go through redis-py
    try:
        assert await store._read_values(_keys(1)) == [None]  # arms the watchdog for t + 1.0 s
        await asyncio.sleep(0.7)
        # Sent at 0.7 s, answered at 1.2 s: the watchdog fires at 1.0 s with this one 0.3 s old and waits on.
        assert await store._read_values(_keys(1, 2)) == [None]
        with pytest.raises(StoreUnavailable, match="no reply within"):
            await store._read_values(_keys(1, 3))
    finally:
        await _close_fake(store, server, writers)


async def test_a_reader_that_fell_behind_a_trimmed_change_stream_resyncs(redis_server: RedisServer) -> None:
    store = RedisStore(f"{redis_server.url}?prefix={unique_prefix()}&buckets=64")
    raw = aioredis.Redis.from_url(redis_server.url)
    feed = store.watch()
    try:
        await _listed(store, _keys(1))  # the stream holds an entry older than where the reader starts
        first = await feed.__anext__()
        assert first.keys is None and first.rules  # the initial resync
        # WATCH_COUNT + 500 changes that the reader has not read yet, none trimmed: a full batch, no resync
        for i in range(WATCH_COUNT + 500):
            await raw.xadd(store.k_changes, {"k": f"{i:014d}"})
        change = await feed.__anext__()
        assert change.keys is not None and len(change.keys) == WATCH_COUNT
        # 3000 more, then the stream is cut to its last 1000: the reader lost 2500 changes it never read
        for i in range(3000):
            await raw.xadd(store.k_changes, {"k": f"{10_000 + i:014d}"})
        await raw.xtrim(store.k_changes, maxlen=1000, approximate=False)
        change = await feed.__anext__()
        assert change.keys is None and change.rules, "changes were lost: everything must be invalidated"
    finally:
        await feed.aclose()
        await raw.delete(store.k_changes)
        await raw.aclose()
        await store.flush_prefix()
        await store.close()


@pytest.mark.parametrize("cluster_like", [False, True], ids=["script", "client-xadd"])
async def test_import_chunks_name_their_keys_and_keep_the_change_stream_short(redis_server: RedisServer,
                                                                               cluster_like: bool) -> None:
    """An import chunk's change entry names its IMEIs (up to CHANGE_KEYS_MAX, so followers invalidate only
    those); such a bulk entry caps the stream at CHANGES_MAXLEN_BULK entries, however many small ones it held."""
    store = RedisStore(f"{redis_server.url}?prefix={unique_prefix()}&buckets=1024")
    raw = aioredis.Redis.from_url(redis_server.url)
    try:
        await store.ping()
        store.cluster = cluster_like  # the cluster's path: HSETNX pipelined, the entry appended by the client
        for i in range(CHANGES_MAXLEN_BULK + 300):
            await raw.xadd(store.k_changes, {"k": f"{i:014d}"})
        keys = _keys(BULK_CHANGE_KEYS + 200)
        assert await store.add_new_values(keys, ["1"] * len(keys)) == []
        entries = await raw.xrevrange(store.k_changes, count=1)
        assert set(entries[0][1][b"k"].decode().split(",")) == set(keys)
        # approximate trimming drops whole stream nodes (of up to 100 small entries): at most one node more
        assert 1 <= await raw.xlen(store.k_changes) <= CHANGES_MAXLEN_BULK + 100
        assert changes_maxlen(",".join(keys[:10])) == CHANGES_MAXLEN
        assert changes_maxlen(",".join(_keys(CHANGE_KEYS_MAX + 1))) == CHANGES_MAXLEN_BULK
        assert change_of(_keys(CHANGE_KEYS_MAX)) != "*" and change_of(_keys(CHANGE_KEYS_MAX + 1)) == "*"
        assert IMPORT_CHUNK <= CHANGE_KEYS_MAX  # an import chunk's entry always names its keys
    finally:
        store.cluster = False
        await raw.delete(store.k_changes)
        await raw.aclose()
        await store.flush_prefix()
        await store.close()


async def test_import_entries_read_together_are_followed_one_change_each(redis_server: RedisServer) -> None:
    """Entries of an import read in one XREAD are yielded as a change each (the follower yields the loop
    between them), not merged into one change of every key."""
    store = RedisStore(f"{redis_server.url}?prefix={unique_prefix()}&buckets=64")
    raw = aioredis.Redis.from_url(redis_server.url)
    feed = store.watch()
    try:
        first = await feed.__anext__()
        assert first.keys is None  # the initial resync
        chunks = [_keys(CHANGE_KEYS_MAX, seed=s) for s in (1, 2, 3)]
        for chunk in chunks:
            await raw.xadd(store.k_changes, {"k": ",".join(chunk)})
        got = []
        while sum(map(len, got)) < 3 * CHANGE_KEYS_MAX:
            change = await feed.__anext__()
            assert change.keys is not None
            if change.keys:
                got.append(change.keys)
        assert got == [frozenset(c) for c in chunks]
    finally:
        await feed.aclose()
        await raw.delete(store.k_changes)
        await raw.aclose()
        await store.close()
