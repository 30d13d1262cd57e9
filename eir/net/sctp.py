"""Kernel SCTP sockets for Diameter, on the Linux sockets API (RFC 6458), standard library only.

RFC 6733 §2.1: a Diameter node runs over TCP or SCTP; over SCTP every DATA chunk carries the
payload protocol identifier (PPID) 46 ("Diameter", IANA SCTP Payload Protocol Identifiers; 47 is
"Diameter in a DTLS message").

The helpers build *one-to-one style* sockets (RFC 6458 §4: ``socket(AF_INET[6], SOCK_STREAM,
IPPROTO_SCTP)``), which behave like TCP sockets for ``listen``/``accept``/``connect``/``send``/``recv``
and therefore plug into asyncio's stock transports (``loop.create_server(sock=...)``,
``loop.create_connection(sock=...)``). Those transports call plain ``send()``, which has no ancillary
data, so the PPID is installed once per socket as the default send parameters
(``SCTP_DEFAULT_SEND_PARAM``, RFC 6458 §8.1.10, deprecated there in favour of
``SCTP_DEFAULT_SNDINFO`` but supported by every Linux kernel) and inherited by accepted sockets.

The PPID field is opaque to SCTP (RFC 9260 §3.3.1): the kernel copies the 32 bits to the wire as
given, so it is stored in network byte order, as lksctp, Wireshark and every peer do.

Use the standard library event loop for these sockets: uvloop refuses SCTP sockets (errno 92).
On a kernel without SCTP every function here raises :class:`SctpUnavailableError`.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
import struct

__all__ = [
    "DIAMETER_DTLS_PPID",
    "DIAMETER_PPID",
    "IPPROTO_SCTP",
    "SCTP_DEFAULT_SEND_PARAM",
    "SCTP_NODELAY",
    "SCTP_RCVINFO",
    "SCTP_RECVRCVINFO",
    "SctpUnavailableError",
    "create_sctp_connection_socket",
    "create_sctp_listener",
    "enable_recv_rcvinfo",
    "get_default_ppid",
    "open_sctp_connection_socket",
    "recv_with_ppid",
    "sctp_available",
    "set_default_ppid",
]

# ---------------------------------------------------------------------------------------------------
# Constants, from the Linux UAPI header include/uapi/linux/sctp.h (installed as
# /usr/include/linux/sctp.h by linux-libc-dev) and include/uapi/linux/in.h; RFC 6458 section in [].
# ---------------------------------------------------------------------------------------------------
IPPROTO_SCTP = 132  # linux/in.h: IPPROTO_SCTP; also the socket option level SOL_SCTP
SCTP_NODELAY = 3  # setsockopt int: disable Nagle-like bundling delay [§8.1.5]
SCTP_DEFAULT_SEND_PARAM = 10  # setsockopt struct sctp_sndrcvinfo: defaults for send() [§8.1.10]
SCTP_RECVRCVINFO = 32  # setsockopt int: deliver an SCTP_RCVINFO cmsg with recvmsg() [§8.1.29]
SCTP_RCVINFO = 3  # cmsg type in enum sctp_cmsg_type (INIT 0, SNDRCV 1, SNDINFO 2, RCVINFO 3) [§5.3.5]
DIAMETER_PPID = 46  # IANA SCTP PPID for Diameter (RFC 6733 §2.1)
DIAMETER_DTLS_PPID = 47  # IANA SCTP PPID for Diameter in a DTLS message (RFC 6733 §2.1)

# struct sctp_sndrcvinfo { __u16 sinfo_stream, sinfo_ssn, sinfo_flags; (2 bytes padding)
#   __u32 sinfo_ppid, sinfo_context, sinfo_timetolive, sinfo_tsn, sinfo_cumtsn;
#   sctp_assoc_t (__s32) sinfo_assoc_id; }
_SNDRCVINFO = struct.Struct("=HHH2xIIIIIi")  # 32 bytes, native byte order like the kernel
_SNDRCVINFO_PPID_OFFSET = 8
# struct sctp_rcvinfo { __u16 rcv_sid, rcv_ssn, rcv_flags; (2 bytes padding)
#   __u32 rcv_ppid, rcv_tsn, rcv_cumtsn, rcv_context; sctp_assoc_t rcv_assoc_id; }
_RCVINFO = struct.Struct("=HHH2xIIIIi")  # 28 bytes
_UNAVAILABLE_ERRNOS = frozenset({errno.EPROTONOSUPPORT, errno.ESOCKTNOSUPPORT})


class SctpUnavailableError(OSError):
    """The running kernel cannot create SCTP sockets (no ``sctp`` module, or SCTP is disabled).

    ``str()`` is a single line that says what failed and what to do about it; ``errno`` is the
    errno of the failed ``socket()`` call (normally ``EPROTONOSUPPORT``).
    """

    def __init__(self, err: int = errno.EPROTONOSUPPORT, family: str = "AF_INET") -> None:
        name = errno.errorcode.get(err, str(err))
        message = (
            f"SCTP is not supported by this kernel (socket({family}, SOCK_STREAM, IPPROTO_SCTP) failed: "
            f"{name}); load the sctp module or use --transport tcp"
        )
        super().__init__(err, message)

    def __str__(self) -> str:
        return str(self.strerror)


def _new_sctp_socket(family: socket.AddressFamily) -> socket.socket:
    """``socket(family, SOCK_STREAM, IPPROTO_SCTP)``: a one-to-one style socket (RFC 6458 §4.1)."""
    try:
        return socket.socket(family, socket.SOCK_STREAM, IPPROTO_SCTP)
    except OSError as exc:
        if exc.errno in _UNAVAILABLE_ERRNOS:
            raise SctpUnavailableError(exc.errno, family.name) from exc
        raise


def sctp_available() -> bool:
    """True if this kernel can create a one-to-one SCTP socket (RFC 6458 §4.1) right now.

    Creating the socket makes the kernel auto-load the ``sctp`` module when it can.
    """
    try:
        _new_sctp_socket(socket.AF_INET).close()
    except OSError:
        return False
    return True


def _check_sctp(sock: socket.socket) -> None:
    if sock.proto != IPPROTO_SCTP:
        raise ValueError(f"not an SCTP socket (proto {sock.proto}, expected IPPROTO_SCTP {IPPROTO_SCTP})")


def _check_ppid(ppid: int) -> None:
    if not 0 <= ppid <= 0xFFFFFFFF:
        raise ValueError(f"SCTP PPID must fit in 32 bits, got {ppid}")


def set_default_ppid(sock: socket.socket, ppid: int = DIAMETER_PPID) -> None:
    """Make plain ``send()`` on ``sock`` carry ``ppid`` in every DATA chunk.

    ``setsockopt(IPPROTO_SCTP, SCTP_DEFAULT_SEND_PARAM, struct sctp_sndrcvinfo)`` (RFC 6458 §8.1.10)
    with ``sinfo_assoc_id`` 0, which on a one-to-one socket means its (current or future)
    association; sockets accepted from a listener inherit the listener's default. The PPID is
    stored in network byte order (it is opaque to SCTP and copied to the wire as is). Diameter
    uses 46 (RFC 6733 §2.1).
    """
    _check_sctp(sock)
    _check_ppid(ppid)
    info = _SNDRCVINFO.pack(0, 0, 0, socket.htonl(ppid), 0, 0, 0, 0, 0)
    sock.setsockopt(IPPROTO_SCTP, SCTP_DEFAULT_SEND_PARAM, info)


def get_default_ppid(sock: socket.socket) -> int:
    """The PPID that plain ``send()`` on ``sock`` uses (``getsockopt`` of SCTP_DEFAULT_SEND_PARAM)."""
    _check_sctp(sock)
    raw = sock.getsockopt(IPPROTO_SCTP, SCTP_DEFAULT_SEND_PARAM, _SNDRCVINFO.size)
    (ppid_be,) = struct.unpack_from("=I", raw, _SNDRCVINFO_PPID_OFFSET)
    return socket.ntohl(ppid_be)


def enable_recv_rcvinfo(sock: socket.socket) -> None:
    """Ask for an ``SCTP_RCVINFO`` cmsg (struct sctp_rcvinfo) with each ``recvmsg()`` (RFC 6458 §8.1.29).

    Accepted sockets inherit the option from their listener.
    """
    _check_sctp(sock)
    sock.setsockopt(IPPROTO_SCTP, SCTP_RECVRCVINFO, 1)


def recv_with_ppid(sock: socket.socket, bufsize: int = 65536) -> tuple[bytes, int]:
    """Receive one whole SCTP user message and its PPID: ``(data, ppid)``; ``(b"", 0)`` at EOF.

    Uses ``recvmsg()`` and the ``SCTP_RCVINFO`` cmsg (RFC 6458 §5.3.5), so
    :func:`enable_recv_rcvinfo` must have been called on ``sock`` (or on its listener). A message
    larger than ``bufsize`` is reassembled up to ``MSG_EOR``. Meant for blocking sockets (or ones
    with a timeout); on a non-blocking socket it raises ``BlockingIOError`` when nothing is queued.
    """
    _check_sctp(sock)
    chunks: list[bytes] = []
    ppid: int | None = None
    cmsg_space = socket.CMSG_SPACE(_RCVINFO.size)
    while True:
        data, ancdata, flags, _addr = sock.recvmsg(bufsize, cmsg_space)
        for level, ctype, cdata in ancdata:
            is_rcvinfo = level == IPPROTO_SCTP and ctype == SCTP_RCVINFO and len(cdata) >= _RCVINFO.size
            if is_rcvinfo and ppid is None:
                ppid = socket.ntohl(_RCVINFO.unpack_from(cdata)[3])
        if not data and not chunks:
            return b"", 0
        chunks.append(data)
        if flags & socket.MSG_EOR or not data:
            break
    if ppid is None:
        raise RuntimeError("recvmsg() returned no SCTP_RCVINFO cmsg: call enable_recv_rcvinfo() first")
    return b"".join(chunks), ppid


def _resolve(host: str, port: int, *, passive: bool) -> tuple[socket.AddressFamily, tuple[object, ...]]:
    """Family and sockaddr for ``host``: by literal IPv4/IPv6 address, else the first getaddrinfo result."""
    try:
        addr = ipaddress.ip_address(host.split("%", 1)[0]) if host else None
    except ValueError:
        addr = None
    if addr is not None and addr.version == 4:
        return socket.AF_INET, (host, port)
    flags = socket.AI_PASSIVE if passive else 0
    infos = socket.getaddrinfo(host or None, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, flags)
    if addr is not None:  # IPv6 literal: keep getaddrinfo's sockaddr (flowinfo, scope id)
        infos = [i for i in infos if i[0] == socket.AF_INET6] or infos
    family, _type, _proto, _canon, sockaddr = infos[0]
    return family, tuple(sockaddr)


def _configure(sock: socket.socket, ppid: int) -> None:
    set_default_ppid(sock, ppid)
    # Diameter is request/answer: send each message at once (RFC 6458 §8.1.5).
    sock.setsockopt(IPPROTO_SCTP, SCTP_NODELAY, 1)


def create_sctp_listener(
    host: str,
    port: int,
    *,
    ppid: int = DIAMETER_PPID,
    backlog: int = 128,
    reuse_port: bool = False,
) -> socket.socket:
    """A listening, non-blocking one-to-one SCTP socket for a Diameter server (RFC 6733 §2.1).

    ``socket(AF_INET or AF_INET6 by address, SOCK_STREAM, IPPROTO_SCTP)`` (RFC 6458 §4.1) with
    SO_REUSEADDR (and SO_REUSEPORT if asked), SCTP_NODELAY and the default send PPID ``ppid``
    (inherited by accepted sockets), bound to ``(host, port)`` and listening. Hand it to
    ``loop.create_server(factory, sock=...)`` on the standard library event loop.
    Raises :class:`SctpUnavailableError` if the kernel has no SCTP.
    """
    _check_ppid(ppid)
    family, sockaddr = _resolve(host, port, passive=True)
    sock = _new_sctp_socket(family)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        _configure(sock, ppid)
        sock.bind(sockaddr)
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def create_sctp_connection_socket(
    host: str, port: int, *, ppid: int = DIAMETER_PPID, timeout: float | None = 10.0
) -> socket.socket:
    """A connected, non-blocking one-to-one SCTP socket for a Diameter client (RFC 6733 §2.1).

    The association is set up with a blocking ``connect()`` bounded by ``timeout`` seconds (so do
    not call it on a running event loop for a remote peer: use :func:`open_sctp_connection_socket`),
    then the socket is made non-blocking, ready for ``loop.create_connection(factory, sock=...)``.
    Plain ``send()`` carries ``ppid`` (RFC 6458 §8.1.10); SCTP_NODELAY is on.
    Raises :class:`SctpUnavailableError` if the kernel has no SCTP.
    """
    _check_ppid(ppid)
    family, sockaddr = _resolve(host, port, passive=False)
    sock = _new_sctp_socket(family)
    try:
        _configure(sock, ppid)
        sock.settimeout(timeout)
        sock.connect(sockaddr)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


async def open_sctp_connection_socket(
    host: str, port: int, *, ppid: int = DIAMETER_PPID, timeout: float | None = 10.0
) -> socket.socket:
    """Like :func:`create_sctp_connection_socket` but connects without blocking the running loop.

    Must run on the standard library event loop (uvloop refuses SCTP sockets).
    """
    _check_ppid(ppid)
    loop = asyncio.get_running_loop()
    family, sockaddr = await loop.run_in_executor(None, lambda: _resolve(host, port, passive=False))
    sock = _new_sctp_socket(family)
    try:
        _configure(sock, ppid)
        sock.setblocking(False)
        err = sock.connect_ex(sockaddr)
        if err not in (0, errno.EISCONN):
            if err not in (errno.EINPROGRESS, errno.EAGAIN):
                raise OSError(err, f"connect({sockaddr!r}) failed: {errno.errorcode.get(err, err)}")
            writable: asyncio.Future[None] = loop.create_future()
            fd = sock.fileno()

            def _on_writable() -> None:
                if not writable.done():
                    writable.set_result(None)

            loop.add_writer(fd, _on_writable)
            try:
                await asyncio.wait_for(writable, timeout)
            finally:
                loop.remove_writer(fd)
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise OSError(err, f"connect({sockaddr!r}) failed: {errno.errorcode.get(err, err)}")
    except BaseException:
        sock.close()
        raise
    return sock
