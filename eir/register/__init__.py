"""The equipment register: list model, decision engine, stores and the decision service (issue 4).

Protocol-independent: the S13, MAP and N5g-eir front ends all call
:class:`eir.register.service.EquipmentChecker`. Open a store with :func:`open_store`.
"""

from __future__ import annotations

import os

from eir.register.store import Store, StoreConfigError

__all__ = ["DEFAULT_STORE_URL", "Store", "default_store_url", "open_store"]

DEFAULT_STORE_URL = "memory://var/register.eir"


def open_store(url: str) -> Store:
    """Open a store by URL (nothing is contacted until the first call).

    * ``memory://`` (in process only) or ``memory://PATH`` (loaded from / saved to PATH; relative
      paths are relative to the working directory, ``memory:///abs/path`` is absolute);
    * ``redis://host:port/db``, ``unix:///path/redis.sock?db=N``;
    * ``redis+cluster://host:port`` (any node of the cluster);

    Redis URLs accept ``?prefix=P`` (key prefix, default ``eir``), ``buckets=B`` (at creation),
    ``audit_maxlen=N``, ``max_connections=N`` and ``timeout=SECONDS``.
    """
    if url.startswith("memory://"):
        from eir.register.memory_store import MemoryStore

        path = url[len("memory://"):]
        return MemoryStore(path or None)
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme in ("redis", "rediss", "unix", "redis+cluster"):
        from eir.register.redis_store import RedisStore

        return RedisStore(url)
    raise StoreConfigError(
        f"store URL {url!r}: scheme {scheme or '(none)'!r} is not memory, redis, unix or redis+cluster"
    )


def default_store_url() -> str:
    """``EIR_STORE`` from the environment, else the embedded store file under ./var."""
    return os.environ.get("EIR_STORE") or DEFAULT_STORE_URL
