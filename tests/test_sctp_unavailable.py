"""On a kernel without SCTP the helpers fail with one clear line (the VM run covers the kernel with SCTP)."""

from __future__ import annotations

import errno

import pytest

from eir.net.sctp import (
    SctpUnavailableError,
    create_sctp_connection_socket,
    create_sctp_listener,
    sctp_available,
)

pytestmark = pytest.mark.skipif(
    sctp_available(), reason="this kernel has SCTP; the unavailable path only exists without it"
)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_listener_raises_one_line_error(host: str) -> None:
    with pytest.raises(SctpUnavailableError) as info:
        create_sctp_listener(host, 3868)
    message = str(info.value)
    assert "\n" not in message
    assert "SCTP" in message
    assert "--transport tcp" in message
    assert isinstance(info.value, OSError)
    assert info.value.errno in (errno.EPROTONOSUPPORT, errno.ESOCKTNOSUPPORT)


def test_connection_socket_raises_too() -> None:
    with pytest.raises(SctpUnavailableError, match=r"^SCTP is not supported by this kernel"):
        create_sctp_connection_socket("127.0.0.1", 3868)


def test_sctp_available_is_false() -> None:
    assert sctp_available() is False
