"""A periodic tick finer than the event loop's timers, from a Linux ``timerfd`` (timerfd_create(2)).

asyncio's timers cannot wake a loop more often than once a millisecond: the selector rounds its
``epoll_wait`` timeout up to whole milliseconds and uvloop (libuv) keeps time in whole milliseconds, so
``asyncio.sleep(0.0002)`` either sleeps a millisecond or spins. An open-loop generator that sends the
requests due since its last tick then holds each request back by up to a tick: with 1 ms ticks that alone
adds up to 1 ms (0.5 ms on average) to every latency it reports, and sends bursts that no MME sends.

A ``timerfd`` on CLOCK_MONOTONIC (the clock of ``time.monotonic()``) becomes readable every ``interval``
seconds with nanosecond resolution; the loop watches it like a socket (``add_reader``), so a 100 µs tick
costs one wake-up, not a spinning loop. Python 3.13 has ``os.timerfd_create``; on 3.11 it is called
through ``ctypes``. Where neither works (not Linux), :func:`make_ticker` falls back to ``asyncio.sleep``.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import sys
from collections.abc import Awaitable

__all__ = ["FdTicker", "SleepTicker", "make_ticker"]

_CLOCK_MONOTONIC = 1
_TFD_CLOEXEC = 0o2000000
_TFD_NONBLOCK = 0o4000


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.timerfd_create.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.timerfd_settime.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Itimerspec),
                                         ctypes.POINTER(_Itimerspec)]
    except (OSError, AttributeError):
        return None
    return libc


class FdTicker:
    """``await ticker()`` returns at the next multiple of ``interval`` (ticks missed while busy coalesce)."""

    def __init__(self, interval: float, libc: ctypes.CDLL, loop: asyncio.AbstractEventLoop) -> None:
        if not interval > 0:
            raise ValueError(f"tick interval {interval!r} must be positive")
        fd = libc.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create failed")
        self.fd: int = fd
        sec, nsec = divmod(max(1, round(interval * 1e9)), 1_000_000_000)
        spec = _Itimerspec(_Timespec(sec, nsec), _Timespec(sec, nsec))
        if libc.timerfd_settime(fd, 0, ctypes.byref(spec), None) != 0:
            err = ctypes.get_errno()
            os.close(fd)
            raise OSError(err, "timerfd_settime failed")
        self._loop = loop
        self._waiter: asyncio.Future[None] | None = None
        loop.add_reader(fd, self._readable)

    def _readable(self) -> None:
        try:
            os.read(self.fd, 8)  # the expiry count; reading re-arms readability
        except BlockingIOError:
            return
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def __call__(self) -> asyncio.Future[None]:
        waiter = self._waiter
        if waiter is None or waiter.done():
            waiter = self._waiter = self._loop.create_future()
        return waiter

    def close(self) -> None:
        if self.fd >= 0:
            self._loop.remove_reader(self.fd)
            os.close(self.fd)
            self.fd = -1


class SleepTicker:
    """The fallback: ``asyncio.sleep`` (millisecond resolution at best)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval

    def __call__(self) -> Awaitable[None]:
        return asyncio.sleep(self.interval)

    def close(self) -> None:
        pass


def make_ticker(interval: float) -> FdTicker | SleepTicker:
    """A ticker for the running loop (``await ticker()``, then ``ticker.close()``): a timerfd on Linux,
    ``asyncio.sleep`` elsewhere."""
    libc = _libc()
    if libc is None:
        return SleepTicker(interval)
    return FdTicker(interval, libc, asyncio.get_running_loop())
