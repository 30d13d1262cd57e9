"""What an MME makes of an ME-Identity-Check answer (TS 29.272 §7.2.20, §7.3.51, §7.4.3.5).

:class:`EirAnswer` is the MME-side classification of one ECR's fate: an Equipment-Status, an S13 or
base-protocol error, or no answer at all. :func:`classify` reads a decoded ECA;
:class:`FastClassifier` classifies raw ECA bytes for the load generator by caching on the bytes after
the Session-Id (identical for every answer of one kind from one EIR).
"""

from __future__ import annotations

import enum
import struct

from protocols.diameter import DiameterError, Message, decode_message
from protocols.diameter import base_rfc6733 as base
from protocols.diameter import s13_ts29272 as s13

__all__ = ["EirAnswer", "FastClassifier", "classify"]


class EirAnswer(enum.StrEnum):
    """The answer classes the verdict and the MME profiles reason about."""

    WHITE = "white"  # 2001 + Equipment-Status WHITELISTED
    GREY = "grey"  # 2001 + GREYLISTED
    BLACK = "black"  # 2001 + BLACKLISTED
    UNKNOWN = "unknown"  # Experimental-Result 5422 DIAMETER_ERROR_EQUIPMENT_UNKNOWN
    INVALID = "invalid"  # 5004 INVALID_AVP_VALUE / 5005 MISSING_AVP (malformed IMEI)
    NO_STATUS = "no-status"  # 2001 without Equipment-Status (Open5GS leaves the attach hanging)
    BUSY = "busy"  # 3004 DIAMETER_TOO_BUSY
    UNABLE = "unable"  # 5012 DIAMETER_UNABLE_TO_COMPLY (e.g. store down, fail-closed)
    ERROR = "error"  # any other Result-Code
    TIMEOUT = "timeout"  # no answer in time
    CLOSED = "closed"  # connection lost or not connected

    @property
    def is_status(self) -> bool:
        return self in (EirAnswer.WHITE, EirAnswer.GREY, EirAnswer.BLACK)

    @property
    def is_failure(self) -> bool:
        """No usable verdict from the EIR (the MME applies its error cause)."""
        return self in _FAILURES


_FAILURES = frozenset({EirAnswer.NO_STATUS, EirAnswer.BUSY, EirAnswer.UNABLE, EirAnswer.ERROR, EirAnswer.TIMEOUT,
                       EirAnswer.CLOSED})
_BY_STATUS = {0: EirAnswer.WHITE, 1: EirAnswer.BLACK, 2: EirAnswer.GREY}
_RC = base.ResultCode


def classify(answer: Message) -> tuple[EirAnswer, int]:
    """(class, result code) of a decoded ECA; the code is the Experimental-Result-Code when present."""
    rc = answer.get(base.RESULT_CODE)
    if rc is None:
        er = answer.find(base.EXPERIMENTAL_RESULT)
        if er is not None:
            code_avp = er.find(base.EXPERIMENTAL_RESULT_CODE)
            code = 0 if code_avp is None else int(code_avp.value(base.EXPERIMENTAL_RESULT_CODE))
            if code == s13.ExperimentalResultCode.DIAMETER_ERROR_EQUIPMENT_UNKNOWN:
                return EirAnswer.UNKNOWN, code
            return EirAnswer.ERROR, code
        return EirAnswer.ERROR, 0
    rc = int(rc)
    if rc == _RC.DIAMETER_SUCCESS:
        st = answer.get(s13.EQUIPMENT_STATUS)
        return (EirAnswer.NO_STATUS if st is None else _BY_STATUS.get(int(st), EirAnswer.ERROR)), rc
    if rc in (_RC.DIAMETER_INVALID_AVP_VALUE, _RC.DIAMETER_MISSING_AVP):
        return EirAnswer.INVALID, rc
    if rc == _RC.DIAMETER_TOO_BUSY:
        return EirAnswer.BUSY, rc
    if rc == _RC.DIAMETER_UNABLE_TO_COMPLY:
        return EirAnswer.UNABLE, rc
    return EirAnswer.ERROR, rc


_AVP_HEAD = struct.Struct(">II")


class FastClassifier:
    """Classify raw ECA bytes, decoding only the first answer of each shape."""

    __slots__ = ("_cache",)

    def __init__(self) -> None:
        self._cache: dict[bytes, tuple[EirAnswer, int]] = {}

    def __call__(self, data: bytes | memoryview) -> tuple[EirAnswer, int]:
        # Skip the Session-Id (first AVP, RFC 6733 §8.8) when it is there; the rest is the answer's shape.
        code, flen = _AVP_HEAD.unpack_from(data, 20)
        start = 20 + (((flen & 0xFFFFFF) + 3) & ~3) if code == 263 else 20
        key = bytes(data[start:]) + bytes(data[4:8])
        hit = self._cache.get(key)
        if hit is None:
            try:
                hit = classify(decode_message(bytes(data)))
            except DiameterError:
                return EirAnswer.ERROR, 0
            if len(self._cache) < 4096:
                self._cache[key] = hit
        return hit
