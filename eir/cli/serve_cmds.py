"""``eir serve``: run the S13 EIR (issue 5). Flags override the YAML config file."""

from __future__ import annotations

import logging
import sys

import click
import yaml

from eir.config import ConfigError, EirConfig, load_config, to_mapping
from eir.net.sctp import SctpUnavailableError

__all__ = ["serve_cmd"]


@click.command("serve")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), envvar="EIR_CONFIG",
              help="YAML configuration (see config/eir.yaml). Default: built-in defaults.")
@click.option("--listen", multiple=True, metavar="HOST:PORT", help="Diameter listen address (repeatable).")
@click.option("--transport", type=click.Choice(["tcp", "sctp"]), help="Diameter transport.")
@click.option("--store", "store_url", help="Register store URL (memory://PATH, redis://, unix://, redis+cluster://).")
@click.option("--replica-max-entries", type=int, metavar="N",
              help="Hold every listed IMEI in memory (no store round trip per check) while there are at most N; "
                   "0: off.")
@click.option("--origin-host", help="Our Diameter identity (Origin-Host).")
@click.option("--origin-realm", help="Our realm (Origin-Realm); also the Destination-Realm served by default.")
@click.option("--unknown-equipment", type=click.Choice(["unknown", "white", "grey", "black"]),
              help="Unknown IMEIs: 'unknown' answers Experimental-Result 5422, a colour answers 2001 + that status.")
@click.option("--fail", "fail_policy", type=click.Choice(["closed", "open-white", "open-grey", "open-black"]),
              help="Store unavailable: 'closed' answers 5012, 'open-X' answers 2001 + X.")
@click.option("--workers", type=int, help="Worker processes sharing the ports (SO_REUSEPORT).")
@click.option("--admin-listen", metavar="HOST:PORT", help="Serve the admin REST API and /metrics here.")
@click.option("--admin-token", envvar="EIR_ADMIN_TOKEN", help="Bearer token required by the admin API.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]))
@click.option("--log-requests/--no-log-requests", default=None, help="One line per ECR (IMEIs masked).")
@click.option("--print-config", is_flag=True, help="Print the effective configuration as YAML and exit.")
def serve_cmd(config_path: str | None, listen: tuple[str, ...], transport: str | None, store_url: str | None,
              replica_max_entries: int | None, origin_host: str | None, origin_realm: str | None,
              unknown_equipment: str | None,
              fail_policy: str | None, workers: int | None, admin_listen: str | None, admin_token: str | None,
              log_level: str | None, log_requests: bool | None, print_config: bool) -> None:
    """Answer S13 ME-Identity-Check (TS 29.272) from the equipment register.

    Defaults give a working EIR on 127.0.0.1:3868 with the embedded store. SIGTERM shuts down
    gracefully (DPR to every peer); SIGHUP reloads the rule lists.
    """
    try:
        config = load_config(config_path).with_overrides(**{
            "diameter.listen": list(listen) or None, "diameter.transport": transport, "store.url": store_url,
            "store.replica_max_entries": replica_max_entries,
            "diameter.origin_host": origin_host, "diameter.origin_realm": origin_realm,
            "policy.unknown_equipment": unknown_equipment, "policy.fail": fail_policy, "workers": workers,
            "admin.listen": admin_listen, "admin.token": admin_token, "logging.level": log_level,
            "logging.log_requests": log_requests,
        })
    except ConfigError as e:
        raise click.UsageError(str(e)) from None
    if print_config:
        click.echo(yaml.safe_dump(to_mapping(config), sort_keys=False), nl=False)
        return
    _setup_logging(config)
    from eir.server import run, run_workers

    try:
        if config.workers > 1:
            sys.exit(run_workers(config, sys.argv))
        run(config)
    except SctpUnavailableError as e:
        raise click.ClickException(str(e)) from None
    except OSError as e:
        raise click.ClickException(f"cannot listen: {e}") from None


def _setup_logging(config: EirConfig) -> None:
    logging.basicConfig(
        level=getattr(logging, config.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
