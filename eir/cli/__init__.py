"""The ``eir`` command. Subcommand modules register themselves with ``main.add_command``."""

from __future__ import annotations

import click

from eir.cli.register_cmds import audit_group, check_cmd, list_group
from eir.cli.serve_cmds import serve_cmd
from eir.cli.testbed_cmds import testbed_group

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """eirlab: Equipment Identity Register tools."""


main.add_command(list_group)
main.add_command(check_cmd)
main.add_command(audit_group)
main.add_command(serve_cmd)
main.add_command(testbed_group)
