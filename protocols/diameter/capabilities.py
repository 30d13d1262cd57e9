"""Capabilities exchange (RFC 6733 §5.3): what we advertise, CER/CEA building, common applications."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from . import base_rfc6733 as base
from .answers import LocalNode
from .message import Avp, Message

__all__ = ["Capabilities", "common_applications", "peer_applications", "peer_info_avps"]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What this node advertises in CER/CEA.

    ``auth_applications``/``acct_applications`` go in Auth-/Acct-Application-Id; ``vendor_applications``
    are (Vendor-Id, Auth-Application-Id) pairs sent inside Vendor-Specific-Application-Id (§6.11), as
    3GPP interfaces expect (S13: 10415/16777252).
    """

    node: LocalNode
    host_ip_addresses: tuple[str, ...] = ("127.0.0.1",)
    vendor_id: int = 0
    product_name: str = "eirlab"
    firmware_revision: int | None = 100
    auth_applications: frozenset[int] = frozenset()
    acct_applications: frozenset[int] = frozenset()
    vendor_applications: tuple[tuple[int, int], ...] = ()
    supported_vendors: tuple[int, ...] = ()
    _avps: tuple[Avp, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.host_ip_addresses:
            raise ValueError("host_ip_addresses: CER/CEA need at least one Host-IP-Address (§5.3.1)")
        for a in self.host_ip_addresses:
            ipaddress.ip_address(a)
        avps: list[Avp] = [*self.node.origin_avps]
        avps += [Avp.new(base.HOST_IP_ADDRESS, a) for a in self.host_ip_addresses]
        avps.append(Avp.new(base.VENDOR_ID, self.vendor_id))
        avps.append(Avp.new(base.PRODUCT_NAME, self.product_name))
        if self.node.origin_state_id is not None:
            avps.append(Avp.new(base.ORIGIN_STATE_ID, self.node.origin_state_id))
        avps += [Avp.new(base.SUPPORTED_VENDOR_ID, v) for v in self.supported_vendors]
        avps += [Avp.new(base.AUTH_APPLICATION_ID, a) for a in sorted(self.auth_applications)]
        avps += [Avp.new(base.ACCT_APPLICATION_ID, a) for a in sorted(self.acct_applications)]
        avps += [
            Avp.new(base.VENDOR_SPECIFIC_APPLICATION_ID,
                    [Avp.new(base.VENDOR_ID, v), Avp.new(base.AUTH_APPLICATION_ID, a)])
            for v, a in self.vendor_applications
        ]
        if self.firmware_revision is not None:
            avps.append(Avp.new(base.FIRMWARE_REVISION, self.firmware_revision))
        object.__setattr__(self, "_avps", tuple(avps))

    @property
    def applications(self) -> frozenset[int]:
        """Every application id we serve, whatever AVP advertises it."""
        return self.auth_applications | self.acct_applications | {a for _, a in self.vendor_applications}

    def avps(self) -> tuple[Avp, ...]:
        """The CER body / the CEA body after Result-Code (§5.3.1, §5.3.2), built once."""
        return self._avps


def peer_applications(msg: Message) -> frozenset[int]:
    """Application ids a CER/CEA advertises, Vendor-Id ignored as §5.3 says."""
    apps: set[int] = set(msg.get_all(base.AUTH_APPLICATION_ID))
    apps.update(msg.get_all(base.ACCT_APPLICATION_ID))
    for vsai in msg.find_all(base.VENDOR_SPECIFIC_APPLICATION_ID):
        for child in vsai.children():
            if child.key in (base.AUTH_APPLICATION_ID.key, base.ACCT_APPLICATION_ID.key):
                apps.add(child.value(base.AUTH_APPLICATION_ID))
    return frozenset(apps)


def common_applications(ours: Iterable[int], theirs: Iterable[int]) -> frozenset[int]:
    """§5.3: the intersection; the Relay id (0xffffffff) on either side is common with everything."""
    ours, theirs = frozenset(ours), frozenset(theirs)
    if base.RELAY_APPLICATION in theirs:
        return ours
    if base.RELAY_APPLICATION in ours:
        return theirs
    return ours & theirs


def peer_info_avps(msg: Message) -> tuple[str, str, str, int, int | None, tuple[str, ...]]:
    """(host, realm, product, vendor, origin-state, addresses) of a CER/CEA already validated."""
    addresses = tuple(str(a) if not isinstance(a, tuple) else repr(a) for a in msg.get_all(base.HOST_IP_ADDRESS))
    return (
        msg.get(base.ORIGIN_HOST, ""),
        msg.get(base.ORIGIN_REALM, ""),
        msg.get(base.PRODUCT_NAME, ""),
        msg.get(base.VENDOR_ID, 0),
        msg.get(base.ORIGIN_STATE_ID),
        addresses,
    )
