"""Seeding an eirlab EIR's lists from a scenario through the register's public store API.

(For another vendor's EIR, write the lists as CSV with ``eir testbed seed --csv`` and load them with
its own tools; the verdict never depends on how the lists got there.)
"""

from __future__ import annotations

from collections.abc import Sequence

from testbed.population import ListEntry

__all__ = ["seed_store", "to_register_entries"]


def to_register_entries(entries: Sequence[ListEntry], reporter: str = "testbed") -> list[object]:
    from eir.register.model import Entry, Granularity, Reason, Status

    colour = {"white": Status.WHITE, "grey": Status.GREY, "black": Status.BLACK}
    out: list[object] = []
    for e in entries:
        st = colour[e.status]
        if e.kind == "imei":
            g = Granularity.IMEI_IMSI if e.imsi else Granularity.IMEI
            out.append(Entry(g, e.key, st, Reason.TEST, reporter, imsi=e.imsi))
        elif e.kind == "range":
            out.append(Entry(Granularity.RANGE, e.key, st, Reason.TEST, reporter, last=e.last))
        else:
            out.append(Entry(Granularity.TAC, e.key, st, Reason.TEST, reporter))
    return out


async def seed_store(url: str, entries: Sequence[ListEntry], reporter: str = "testbed") -> int:
    """Write every entry (replacing earlier testbed entries); returns the number written."""
    from eir.register import open_store

    store = open_store(url)
    async with store:
        regs = to_register_entries(entries, reporter)
        rules = [e for e in regs if e.is_rule]  # type: ignore[attr-defined]
        imeis = [e for e in regs if not e.is_rule]  # type: ignore[attr-defined]
        for r in rules:
            await store.put(r, force=True)  # type: ignore[arg-type]
        for i in range(0, len(imeis), 10_000):
            await store.put_many(imeis[i:i + 10_000], force=True)  # type: ignore[arg-type]
    return len(regs)
