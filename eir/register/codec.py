"""Compact encoding of the IMEI-level entries of one IMEI (the Redis key schema's values).

All entries of one 14-digit IMEI key (at most one plain IMEI entry plus its IMEI+IMSI pairings) are
stored as one value:

* the common case, a single plain entry without expiry, is one decimal integer
  ``status | reason << 2 | reporter_id << 5 | (created - 2020-01-01) << 21`` (53 bits), which Redis
  listpacks store as a 64-bit integer (10 bytes);
* anything else is text: entries joined by ``;``, each ``<status><reason>:<reporter_id>:<created>:
  <expires>:<imsi>`` (empty fields when absent).

Reporter organisations are interned to small integers (:class:`Reporters`) so values stay short.
The bucket of an IMEI key ``k`` is ``k mod B`` and its field inside the bucket is ``k div B``
(:func:`bucket_of`), so fields are 32-bit integers for ``B >= 2**16``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from eir.register.model import Entry, EntryError, Granularity, Reason, Status

__all__ = ["EPOCH", "Reporters", "bucket_of", "decode_value", "encode_plain", "encode_value", "key_of",
           "plain_status", "verify_value"]

EPOCH = 1577836800  # 2020-01-01T00:00:00Z
_CREATED_MAX = (1 << 32) - 1
_STATUSES = tuple(Status)
_REASONS = {r.value: r for r in Reason}
_IMEI, _PAIR = Granularity.IMEI, Granularity.IMEI_IMSI


def bucket_of(key: int, buckets: int) -> tuple[int, int]:
    """(bucket number, field number) of a 14-digit IMEI key held as an int."""
    field, bucket = divmod(key, buckets)
    return bucket, field


def key_of(bucket: int, field: int, buckets: int) -> str:
    """Inverse of :func:`bucket_of`: the 14-digit key string."""
    return f"{field * buckets + bucket:014d}"


class Reporters:
    """Interning table of reporting organisations: name <-> small integer id (0 = no reporter)."""

    def __init__(self, names: dict[int, str] | None = None) -> None:
        self.by_id: dict[int, str] = {0: ""}
        self.by_name: dict[str, int] = {"": 0}
        for i, n in (names or {}).items():
            self.add(i, n)

    def add(self, rid: int, name: str) -> None:
        self.by_id[rid] = name
        self.by_name[name] = rid

    def name(self, rid: int) -> str:
        try:
            return self.by_id[rid]
        except KeyError:
            raise LookupError(f"reporter id {rid} is not in the reporter table") from None

    def __contains__(self, rid: int) -> bool:
        return rid in self.by_id


def encode_plain(status: Status, reason: Reason, reporter_id: int, created: int) -> str | None:
    """The compact integer form of a single plain IMEI entry without expiry (None if ``created`` is out of
    its range: such an entry takes the text form)."""
    c = created - EPOCH
    if not 0 <= c <= _CREATED_MAX or not 0 <= reporter_id <= 0xFFFF:
        return None
    return str(status.value | reason.value << 2 | reporter_id << 5 | c << 21)


def encode_value(entries: Iterable[Entry], rid: Callable[[str], int]) -> str | None:
    """Encode the IMEI-level entries of one key; None when there are none (delete the field)."""
    items = list(entries)
    if not items:
        return None
    if len(items) > 1:
        items.sort(key=lambda e: (e.imsi or ""))
    else:
        e = items[0]
        if e.imsi is None and e.expires is None:
            plain = encode_plain(e.status, e.reason, rid(e.reporter), e.created)
            if plain is not None:
                return plain
    parts = []
    for e in items:
        parts.append(
            f"{e.status.value}{e.reason.value}:{rid(e.reporter)}:{e.created}:{e.expires or ''}:{e.imsi or ''}"
        )
    return ";".join(parts)


def plain_status(value: str) -> Status | None:
    """The status of a value in the compact integer form (one plain IMEI entry, no IMSI, no expiry), or None
    for the text form. What an answer needs from the bulk of any block list, without building an entry."""
    return _STATUSES[int(value) & 3] if value.isdigit() else None


def verify_value(key: str, value: str, reporters: Reporters) -> None:
    """Raise as :func:`decode_value` would (LookupError: unknown reporter; EntryError: corrupt), cheaply for
    the integer form."""
    if value.isdigit():
        reporters.name((int(value) >> 5) & 0xFFFF)
    else:
        decode_value(key, value, reporters)


def decode_value(key: str, value: str, reporters: Reporters) -> tuple[Entry, ...]:
    """Decode a stored value back into entries (raises LookupError for an unknown reporter id)."""
    if value.isdigit():
        v = int(value)
        rid = (v >> 5) & 0xFFFF
        return (Entry(_IMEI, key, _STATUSES[v & 3], _REASONS[(v >> 2) & 7], reporters.name(rid),
                      (v >> 21) + EPOCH),)
    out = []
    for part in value.split(";"):
        try:
            sr, rid_s, created, expires, imsi = part.split(":")
            out.append(Entry(_PAIR if imsi else _IMEI, key, Status(int(sr[0])), Reason(int(sr[1])),
                             reporters.name(int(rid_s)), int(created), int(expires) if expires else None,
                             imsi or None))
        except (ValueError, IndexError) as exc:
            raise EntryError(f"corrupt stored value for IMEI {key}: {part!r} ({exc})") from exc
    return tuple(out)
