"""The EIR's configuration: a YAML file (``config/eir.yaml``), overridden by ``eir serve`` flags.

Every setting has a default that gives a working EIR on 127.0.0.1:3868 with the embedded store.
A bad file is refused at start with the key and the reason (:class:`ConfigError`), never half-used.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from eir.register import DEFAULT_STORE_URL
from eir.register.model import Status

__all__ = [
    "AdminConfig",
    "ConfigError",
    "DiameterConfig",
    "EirConfig",
    "PolicyConfig",
    "StoreConfig",
    "load_config",
    "parse_endpoint",
]


class ConfigError(ValueError):
    """A setting is wrong: ``key`` is its dotted path, ``reason`` what is wrong with it."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"config key {key!r}: {reason}")
        self.key = key
        self.reason = reason


def parse_endpoint(text: str, key: str, default_port: int = 3868) -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT`` or ``HOST`` (default port) -> (host, port)."""
    text = str(text).strip()
    host, port = text, default_port
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ConfigError(key, f"{text!r}: unclosed '[' in IPv6 address")
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ConfigError(key, f"{text!r}: expected ':PORT' after ']'")
            port = _port(rest[1:], key)
    elif text.count(":") == 1:
        host, p = text.split(":")
        port = _port(p, key)
    if not host:
        raise ConfigError(key, f"{text!r}: empty host")
    return host, port


def _port(text: str, key: str) -> int:
    if not text.isdigit() or not 0 <= int(text) < 65536:
        raise ConfigError(key, f"port {text!r} is not a number from 0 (any free port) to 65535")
    return int(text)


@dataclass(frozen=True)
class PeerAllowlist:
    """Peers allowed to connect: Origin-Host glob patterns and source networks (empty = anyone)."""

    hosts: tuple[str, ...] = ()
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    def allows_host(self, host: str) -> bool:
        return not self.hosts or any(fnmatch.fnmatchcase(host.lower(), p.lower()) for p in self.hosts)

    def allows_address(self, address: str) -> bool:
        if not self.networks:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in n for n in self.networks)


@dataclass(frozen=True)
class DiameterConfig:
    origin_host: str = "eir.localdomain"
    origin_realm: str = "localdomain"
    listen: tuple[tuple[str, int], ...] = (("127.0.0.1", 3868),)
    transport: str = "tcp"
    host_ip_addresses: tuple[str, ...] = ()
    watchdog_interval: float = 30.0
    max_pending_requests: int = 1024
    allowed_peers: PeerAllowlist = field(default_factory=PeerAllowlist)

    @property
    def advertised_addresses(self) -> tuple[str, ...]:
        """Host-IP-Address values: configured, else the listen addresses (0.0.0.0 -> 127.0.0.1)."""
        if self.host_ip_addresses:
            return self.host_ip_addresses
        out: list[str] = []
        for host, _ in self.listen:
            try:
                ip = ipaddress.ip_address(host)
            except ValueError:
                ip = ipaddress.ip_address("127.0.0.1")
            if ip.is_unspecified:
                ip = ipaddress.ip_address("::1" if ip.version == 6 else "127.0.0.1")
            out.append(str(ip))
        return tuple(dict.fromkeys(out))


@dataclass(frozen=True)
class StoreConfig:
    url: str = DEFAULT_STORE_URL
    cache_size: int = 100_000
    #: > 0: hold a full replica of the IMEI-level values while the register holds at most this many
    #: (``eir.register.replica``); 0: only the cache.
    replica_max_entries: int = 0
    audit: bool = False


@dataclass(frozen=True)
class PolicyConfig:
    """``unknown_equipment`` None answers 5422; ``fail_status`` None is fail-closed (5012)."""

    unknown_equipment: Status | None = None
    fail_status: Status | None = None
    realms: tuple[str, ...] = ()
    max_pending: int = 20_000


@dataclass(frozen=True)
class AdminConfig:
    listen: tuple[str, int] | None = None
    token: str | None = None


@dataclass(frozen=True)
class EirConfig:
    diameter: DiameterConfig = field(default_factory=DiameterConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    workers: int = 1
    log_level: str = "info"
    log_requests: bool = False

    @property
    def realms(self) -> tuple[str, ...]:
        """Destination-Realms served: configured, else our Origin-Realm."""
        return self.policy.realms or (self.diameter.origin_realm,)

    def with_overrides(self, **flags: Any) -> EirConfig:
        """Apply ``eir serve`` flags (None = not given) and re-validate."""
        raw = to_mapping(self)
        for dotted, value in flags.items():
            if value is None or value == ():
                continue
            section, _, key = dotted.partition(".")
            if key:
                raw.setdefault(section, {})[key] = value
            else:
                raw[section] = value
        return from_mapping(raw)


# ---------------------------------------------------------------------------------------- parsing
_TOP = {"diameter", "store", "policy", "admin", "workers", "logging"}
_SECTIONS: dict[str, set[str]] = {
    "diameter": {"origin_host", "origin_realm", "listen", "transport", "host_ip_addresses", "watchdog_interval",
                 "max_pending_requests", "allowed_peers"},
    "store": {"url", "cache_size", "replica_max_entries", "audit"},
    "policy": {"unknown_equipment", "fail", "realms", "max_pending"},
    "admin": {"listen", "token", "token_env"},
    "logging": {"level", "log_requests"},
}
_STATUS_WORDS = {"white": Status.WHITE, "grey": Status.GREY, "gray": Status.GREY, "black": Status.BLACK}


def _section(raw: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = raw.get(name) or {}
    if not isinstance(value, Mapping):
        raise ConfigError(name, f"expected a mapping, got {type(value).__name__}")
    unknown = set(value) - _SECTIONS[name]
    if unknown:
        raise ConfigError(f"{name}.{sorted(unknown)[0]}", f"unknown key (known: {', '.join(sorted(_SECTIONS[name]))})")
    return value


def _int(value: Any, key: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).lstrip("-").isdigit():
        raise ConfigError(key, f"{value!r} is not a whole number")
    n = int(value)
    if not low <= n <= high:
        raise ConfigError(key, f"{n} is outside {low}..{high}")
    return n


def _list(value: Any, key: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list | tuple):
        raise ConfigError(key, f"expected a list, got {type(value).__name__}")
    return list(value)


def _identity(value: Any, key: str) -> str:
    text = str(value or "")
    if not text or not text.isascii() or " " in text:
        raise ConfigError(key, f"{value!r} is not a DiameterIdentity (an ASCII FQDN, RFC 6733 §4.3.1)")
    return text


def _status_or(value: Any, key: str, none_word: str) -> Status | None:
    word = str(value).strip().lower()
    if word == none_word:
        return None
    if word not in _STATUS_WORDS:
        raise ConfigError(key, f"{value!r}: expected {none_word}, white, grey or black")
    return _STATUS_WORDS[word]


def from_mapping(raw: Mapping[str, Any]) -> EirConfig:
    if not isinstance(raw, Mapping):
        raise ConfigError("(top)", "the file must hold a mapping")
    unknown = set(raw) - _TOP
    if unknown:
        raise ConfigError(sorted(unknown)[0], f"unknown key (known: {', '.join(sorted(_TOP))})")
    d = _section(raw, "diameter")
    transport = str(d.get("transport", "tcp")).lower()
    if transport not in ("tcp", "sctp"):
        raise ConfigError("diameter.transport", f"{transport!r}: expected tcp or sctp")
    listen = tuple(parse_endpoint(x, "diameter.listen") for x in _list(d.get("listen", ["127.0.0.1:3868"]),
                                                                           "diameter.listen"))
    if not listen:
        raise ConfigError("diameter.listen", "at least one HOST:PORT is needed")
    addresses = tuple(str(a) for a in _list(d.get("host_ip_addresses"), "diameter.host_ip_addresses"))
    for a in addresses:
        try:
            ipaddress.ip_address(a)
        except ValueError:
            raise ConfigError("diameter.host_ip_addresses", f"{a!r} is not an IP address") from None
    tw = d.get("watchdog_interval", 30)
    if not isinstance(tw, int | float) or isinstance(tw, bool) or tw < 6:
        raise ConfigError("diameter.watchdog_interval", f"{tw!r}: seconds, at least 6 (RFC 3539 §3.4.1)")
    ap = d.get("allowed_peers") or {}
    if not isinstance(ap, Mapping) or set(ap) - {"hosts", "networks"}:
        raise ConfigError("diameter.allowed_peers", "expected a mapping with 'hosts' and/or 'networks'")
    networks = []
    for n in _list(ap.get("networks"), "diameter.allowed_peers.networks"):
        try:
            networks.append(ipaddress.ip_network(str(n), strict=False))
        except ValueError:
            raise ConfigError("diameter.allowed_peers.networks", f"{n!r} is not an address or network") from None
    diameter = DiameterConfig(
        origin_host=_identity(d.get("origin_host", "eir.localdomain"), "diameter.origin_host"),
        origin_realm=_identity(d.get("origin_realm", "localdomain"), "diameter.origin_realm"),
        listen=listen,
        transport=transport,
        host_ip_addresses=addresses,
        watchdog_interval=float(tw),
        max_pending_requests=_int(d.get("max_pending_requests", 1024), "diameter.max_pending_requests", 1, 1 << 20),
        allowed_peers=PeerAllowlist(
            tuple(str(h) for h in _list(ap.get("hosts"), "diameter.allowed_peers.hosts")), tuple(networks)
        ),
    )
    s = _section(raw, "store")
    url = str(s.get("url", DEFAULT_STORE_URL))
    if "://" not in url or url.split("://")[0] not in ("memory", "redis", "rediss", "unix", "redis+cluster"):
        raise ConfigError("store.url", f"{url!r}: expected memory://[PATH], redis://, unix:// or redis+cluster://")
    store = StoreConfig(url, _int(s.get("cache_size", 100_000), "store.cache_size", 0, 1 << 30),
                        _int(s.get("replica_max_entries", 0), "store.replica_max_entries", 0, 1 << 30),
                        bool(s.get("audit", False)))
    p = _section(raw, "policy")
    fail = str(p.get("fail", "closed")).strip().lower()
    fail_status = _status_or(fail.removeprefix("open-"), "policy.fail", "closed")
    if fail_status is not None and not fail.startswith("open-"):
        raise ConfigError("policy.fail", f"{fail!r}: expected closed, open-white, open-grey or open-black")
    policy = PolicyConfig(
        unknown_equipment=_status_or(p.get("unknown_equipment", "unknown"), "policy.unknown_equipment", "unknown"),
        fail_status=fail_status,
        realms=tuple(_identity(r, "policy.realms") for r in _list(p.get("realms"), "policy.realms")),
        max_pending=_int(p.get("max_pending", 20_000), "policy.max_pending", 1, 1 << 24),
    )
    adm = _section(raw, "admin")
    token = adm.get("token")
    if adm.get("token_env"):
        token = os.environ.get(str(adm["token_env"]))
        if not token:
            raise ConfigError("admin.token_env", f"environment variable {adm['token_env']!r} is not set")
    admin = AdminConfig(parse_endpoint(adm["listen"], "admin.listen", 8080) if adm.get("listen") else None,
                        str(token) if token else None)
    lg = _section(raw, "logging")
    level = str(lg.get("level", "info")).lower()
    if level not in ("debug", "info", "warning", "error"):
        raise ConfigError("logging.level", f"{level!r}: expected debug, info, warning or error")
    workers = _int(raw.get("workers", 1), "workers", 1, 256)
    if workers > 1 and transport == "sctp":
        raise ConfigError("workers", "several workers share a port with SO_REUSEPORT, which needs TCP")
    return EirConfig(diameter, store, policy, admin, workers, level, bool(lg.get("log_requests", False)))


def to_mapping(cfg: EirConfig) -> dict[str, Any]:
    """The inverse of :func:`from_mapping` (used to apply overrides, and by ``eir serve --print-config``)."""
    d = cfg.diameter
    st = {None: None, Status.WHITE: "white", Status.GREY: "grey", Status.BLACK: "black"}
    return {
        "diameter": {
            "origin_host": d.origin_host, "origin_realm": d.origin_realm,
            "listen": [f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in d.listen], "transport": d.transport,
            "host_ip_addresses": list(d.host_ip_addresses), "watchdog_interval": d.watchdog_interval,
            "max_pending_requests": d.max_pending_requests,
            "allowed_peers": {"hosts": list(d.allowed_peers.hosts),
                              "networks": [str(n) for n in d.allowed_peers.networks]},
        },
        "store": {"url": cfg.store.url, "cache_size": cfg.store.cache_size,
                  "replica_max_entries": cfg.store.replica_max_entries, "audit": cfg.store.audit},
        "policy": {
            "unknown_equipment": st[cfg.policy.unknown_equipment] or "unknown",
            "fail": "closed" if cfg.policy.fail_status is None else f"open-{st[cfg.policy.fail_status]}",
            "realms": list(cfg.policy.realms), "max_pending": cfg.policy.max_pending,
        },
        "admin": ({"listen": f"{cfg.admin.listen[0]}:{cfg.admin.listen[1]}"} if cfg.admin.listen else {})
        | ({"token": cfg.admin.token} if cfg.admin.token else {}),
        "workers": cfg.workers,
        "logging": {"level": cfg.log_level, "log_requests": cfg.log_requests},
    }


def load_config(path: str | os.PathLike[str] | None) -> EirConfig:
    """Read and validate a YAML file (None: the defaults)."""
    if path is None:
        return EirConfig()
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError("(file)", f"cannot read {p}: {e.strerror}") from None
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ConfigError("(file)", f"{p} is not valid YAML: {e}") from None
    return from_mapping(raw)


