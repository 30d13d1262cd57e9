"""eir/config.py: defaults that work, every bad value refused with its key and reason, flags override."""

from __future__ import annotations

from pathlib import Path

import pytest

from eir.config import ConfigError, EirConfig, from_mapping, load_config, parse_endpoint, to_mapping
from eir.register.model import Status

REPO = Path(__file__).resolve().parents[2]


def test_defaults_give_a_local_eir_on_3868_with_the_embedded_store() -> None:
    cfg = EirConfig()
    assert cfg.diameter.listen == (("127.0.0.1", 3868),)
    assert cfg.store.url.startswith("memory://")
    assert cfg.realms == ("localdomain",)
    assert cfg.policy.unknown_equipment is None and cfg.policy.fail_status is None


def test_the_documented_example_file_loads_and_round_trips() -> None:
    cfg = load_config(REPO / "config" / "eir.yaml")
    assert from_mapping(to_mapping(cfg)) == cfg
    assert cfg == EirConfig()  # the example documents the defaults


@pytest.mark.parametrize(
    ("raw", "key", "words"),
    [
        ({"diameter": {"listen": ["127.0.0.1:99999"]}}, "diameter.listen", "port"),
        ({"diameter": {"listen": []}}, "diameter.listen", "at least one"),
        ({"diameter": {"transport": "udp"}}, "diameter.transport", "tcp or sctp"),
        ({"diameter": {"watchdog_interval": 3}}, "diameter.watchdog_interval", "at least 6"),
        ({"diameter": {"origin_host": "has space"}}, "diameter.origin_host", "DiameterIdentity"),
        ({"diameter": {"host_ip_addresses": ["nope"]}}, "diameter.host_ip_addresses", "not an IP"),
        ({"diameter": {"allowed_peers": {"networks": ["300.1.1.1/8"]}}}, "diameter.allowed_peers.networks", "network"),
        ({"diameter": {"colour": 1}}, "diameter.colour", "unknown key"),
        ({"store": {"url": "postgres://x"}}, "store.url", "redis"),
        ({"store": {"cache_size": "many"}}, "store.cache_size", "whole number"),
        ({"store": {"replica_max_entries": -1}}, "store.replica_max_entries", "outside"),
        ({"policy": {"unknown_equipment": "purple"}}, "policy.unknown_equipment", "white, grey or black"),
        ({"policy": {"fail": "white"}}, "policy.fail", "open-white"),
        ({"policy": {"max_pending": 0}}, "policy.max_pending", "outside"),
        ({"logging": {"level": "loud"}}, "logging.level", "expected"),
        ({"workers": 2, "diameter": {"transport": "sctp"}}, "workers", "TCP"),
        ({"admin": {"token_env": "EIRLAB_SURELY_UNSET_VARIABLE"}}, "admin.token_env", "not set"),
        ({"extra": {}}, "extra", "unknown key"),
        ({"diameter": "oops"}, "diameter", "mapping"),
    ],
)
def test_bad_values_name_the_key_and_the_reason(raw: dict[str, object], key: str, words: str) -> None:
    with pytest.raises(ConfigError) as exc:
        from_mapping(raw)
    assert exc.value.key == key
    assert words in exc.value.reason
    assert key in str(exc.value)


def test_unreadable_and_invalid_yaml_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("diameter: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_flags_override_the_file_and_are_validated(tmp_path: Path) -> None:
    f = tmp_path / "eir.yaml"
    f.write_text("diameter:\n  origin_host: eir.file\n  listen: ['127.0.0.1:4000']\npolicy:\n  fail: closed\n")
    cfg = load_config(f).with_overrides(**{"diameter.listen": ["[::1]:3870", "127.0.0.2"],
                                           "policy.fail": "open-grey", "diameter.origin_host": None})
    assert cfg.diameter.origin_host == "eir.file"  # not given on the command line: kept
    assert cfg.diameter.listen == (("::1", 3870), ("127.0.0.2", 3868))
    assert cfg.policy.fail_status is Status.GREY
    with pytest.raises(ConfigError) as exc:
        cfg.with_overrides(**{"policy.unknown_equipment": "sometimes"})
    assert exc.value.key == "policy.unknown_equipment"


def test_advertised_addresses_follow_the_listen_addresses() -> None:
    cfg = from_mapping({"diameter": {"listen": ["0.0.0.0:3868", "[::]:3868", "127.0.0.5:1"]}})
    assert cfg.diameter.advertised_addresses == ("127.0.0.1", "::1", "127.0.0.5")


@pytest.mark.parametrize(("text", "expected"), [
    ("10.0.0.1:3868", ("10.0.0.1", 3868)), ("host", ("host", 3868)), ("[::1]:5", ("::1", 5)), ("[::1]", ("::1", 3868)),
])
def test_parse_endpoint(text: str, expected: tuple[str, int]) -> None:
    assert parse_endpoint(text, "k") == expected


def test_allowlist_patterns_and_networks() -> None:
    cfg = from_mapping({"diameter": {"allowed_peers": {"hosts": ["mme*.epc.test"], "networks": ["127.0.0.0/8"]}}})
    allow = cfg.diameter.allowed_peers
    assert allow.allows_host("MME01.epc.test") and not allow.allows_host("hss.epc.test")
    assert allow.allows_address("127.1.2.3") and not allow.allows_address("10.0.0.1")
    assert not allow.allows_address("not-an-ip")
