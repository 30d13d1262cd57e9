"""``eir list ...``, ``eir check`` and ``eir audit export``: list management (issue 4 "Management CLI").

Every command takes ``--store URL`` (default ``$EIR_STORE``, else the embedded store file
``memory://var/register.eir``). ``--reporter`` defaults to ``$EIR_REPORTER``, else ``local``.
Exit codes: 0 done, 1 refused or partly applied (message says what), 2 usage, 3 store unavailable.
"""

from __future__ import annotations

import asyncio
import csv
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from eir.identity import ImeiError, parse_imei
from eir.register import default_store_url, open_store
from eir.register.audit import AUDIT_FIELDS
from eir.register.csvio import CsvFormatError, parse_time, write_entries
from eir.register.decision import CheckRequest
from eir.register.importer import ImportInterrupted, import_csv
from eir.register.model import Entry, EntryError, Reason, Status, validate_imsi
from eir.register.policy import Policy
from eir.register.selection import SelectionError, select_entry, validate_svn
from eir.register.service import EquipmentChecker
from eir.register.store import EntryNotFound, OwnershipError, Store, StoreConfigError, StoreUnavailable

__all__ = ["audit_group", "check_cmd", "list_group"]

T = TypeVar("T")
EXIT_REFUSED, EXIT_UNAVAILABLE = 1, 3

store_option = click.option(
    "--store", "store_url", default=default_store_url, show_default="$EIR_STORE or memory://var/register.eir",
    help="Store URL: memory://[PATH], redis://HOST:PORT/DB, unix://PATH, redis+cluster://HOST:PORT.",
)
reporter_option = click.option(
    "--reporter", envvar="EIR_REPORTER", default="local", show_default=True,
    help="Reporting organisation (only it may change or remove its entries unless --force).",
)


def _run(url: str, fn: Callable[[Store], Awaitable[T]]) -> T:
    async def go() -> T:
        store = open_store(url)
        try:
            return await fn(store)
        finally:
            await store.close()

    try:
        return asyncio.run(go())
    except StoreConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    except StoreUnavailable as exc:
        click.echo(f"error: store unavailable, nothing more was written: {exc}", err=True)
        sys.exit(EXIT_UNAVAILABLE)
    except (OwnershipError, EntryNotFound) as exc:
        click.echo(f"refused: {exc}", err=True)
        sys.exit(EXIT_REFUSED)


def _selector(imei: str | None, tac: str | None, rng: tuple[str, str] | None, imsi: str | None,
              svns: tuple[str, ...], status: Status, **kw: Any) -> Entry:
    try:
        return select_entry(status, imei=imei, tac=tac, rng=rng, imsi=imsi, svns=svns, **kw)
    except SelectionError as exc:
        raise click.UsageError(str(exc)) from exc
    except (ImeiError, EntryError) as exc:
        raise click.BadParameter(str(exc)) from exc


def _target_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.argument("imei", required=False)(f)
    f = click.option("--tac", help="An 8-digit Type Allocation Code instead of an IMEI.")(f)
    f = click.option("--range", "rng", nargs=2, metavar="FIRST LAST", help="An inclusive IMEI range.")(f)
    f = click.option("--imsi", help="Pair the IMEI entry with this IMSI.")(f)
    f = click.option("--sv", "svns", multiple=True, help="Software version(s) for a TAC+SVN rule (repeat).")(f)
    return f


@click.group("list")
def list_group() -> None:
    """Manage the white/grey/black lists."""


@list_group.command("add")
@_target_options
@click.option("--status", type=click.Choice(["white", "grey", "black"]), required=True)
@click.option("--reason", type=click.Choice([r.name.lower() for r in Reason]), default="other", show_default=True)
@click.option("--expires", help="Expiry: YYYY-MM-DD, ISO 8601 date-time (UTC) or Unix seconds.")
@click.option("--force", is_flag=True, help="Replace an entry reported by another organisation.")
@reporter_option
@store_option
def add_cmd(imei: str | None, tac: str | None, rng: tuple[str, str] | None, imsi: str | None,
            svns: tuple[str, ...], status: str, reason: str, expires: str | None, force: bool,
            reporter: str, store_url: str) -> None:
    """Add (or replace) an entry: eir list add IMEI --status black [--imsi IMSI] ..."""
    try:
        exp = parse_time(expires) if expires else None
        if imsi is not None:
            imsi = validate_imsi(imsi)
    except EntryError as exc:
        raise click.BadParameter(str(exc)) from exc
    entry = _selector(imei, tac, rng or None, imsi, svns, Status.parse(status), reason=Reason.parse(reason),
                      reporter=reporter, expires=exp)
    replaced = _run(store_url, lambda s: s.put(entry, force=force))
    click.echo(f"{'replaced' if replaced else 'added'}: {entry.describe()}")


@list_group.command("remove")
@_target_options
@click.option("--force", is_flag=True, help="Remove an entry reported by another organisation.")
@reporter_option
@store_option
def remove_cmd(imei: str | None, tac: str | None, rng: tuple[str, str] | None, imsi: str | None,
               svns: tuple[str, ...], force: bool, reporter: str, store_url: str) -> None:
    """Remove an entry (only its reporter may, unless --force)."""
    sel = _selector(imei, tac, rng or None, imsi, svns, Status.WHITE)
    removed = _run(store_url, lambda s: s.remove(sel.ident, reporter=reporter, force=force))
    click.echo(f"removed: {removed.describe()}")


@list_group.command("show")
@click.argument("imei")
@store_option
def show_cmd(imei: str, store_url: str) -> None:
    """Show every entry concerning an IMEI (its own, covering ranges, its TAC)."""
    try:
        key = parse_imei(imei).key
    except ImeiError as exc:
        raise click.BadParameter(str(exc)) from exc
    entries = _run(store_url, lambda s: s.entries_for(key))
    if not entries:
        click.echo(f"IMEI {key}: no entries")
    for e in entries:
        click.echo(e.describe())


@list_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--skip-bad", is_flag=True, help="Apply the good rows even if some rows are bad (default: "
              "validate the whole file first and apply nothing if any row is bad).")
@click.option("--status", "default_status", type=click.Choice(["white", "grey", "black"]),
              help="Status for rows with an empty status column.")
@click.option("--force", is_flag=True, help="Replace entries reported by other organisations.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal).")
@reporter_option
@store_option
def import_cmd(file: Path, skip_bad: bool, default_status: str | None, force: bool, progress: bool | None,
               reporter: str, store_url: str) -> None:
    """Import a CSV file (header: kind,imei,last,status,reason,reporter,imsi,svn,created,expires)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    size = file.stat().st_size
    show = sys.stderr.isatty() if progress is None else progress
    bar = Progress(TextColumn("{task.description}"), BarColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
                   disable=not show, transient=False, console=None)
    tasks: dict[str, Any] = {}

    def on_progress(phase: str, done: int) -> None:
        if phase not in tasks:
            tasks[phase] = bar.add_task(phase, total=size)
        bar.update(tasks[phase], completed=done)

    st = Status.parse(default_status) if default_status else None
    try:
        with bar:
            report = _run(store_url, lambda s: import_csv(s, file, reporter=reporter, status=st, force=force,
                                                           strict=not skip_bad, progress=on_progress))
    except CsvFormatError as exc:
        raise click.BadParameter(str(exc), param_hint="FILE") from exc
    except ImportInterrupted as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_UNAVAILABLE)
    for e in report.bad[:1000]:
        click.echo(f"{file}:{e.line}: bad row: {e.reason}", err=True)
    if len(report.bad) > 1000:
        click.echo(f"... and {len(report.bad) - 1000} more bad rows", err=True)
    for e in report.conflicts[:1000]:
        click.echo(f"{file}:{e.line}: not applied: {e.reason}", err=True)
    if report.applied_nothing:
        click.echo(f"nothing applied: {len(report.bad)} bad row(s) of {report.rows}; fix them or use --skip-bad",
                   err=True)
        sys.exit(EXIT_REFUSED)
    click.echo(f"applied {report.applied} of {report.rows} rows; {len(report.bad)} bad, "
               f"{len(report.conflicts)} refused (owned by another organisation)")
    if not report.ok:
        sys.exit(EXIT_REFUSED)


@list_group.command("export")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@store_option
def export_cmd(file: Path | None, store_url: str) -> None:
    """Export every entry as CSV (to FILE, or standard output)."""

    async def go(s: Store) -> int:
        chunks = [c async for c in s.export()]
        if file is None:
            return write_entries(sys.stdout, chunks)
        with file.open("w", newline="", encoding="utf-8") as f:
            return write_entries(f, chunks)

    n = _run(store_url, go)
    if file is not None:
        click.echo(f"exported {n} entries to {file}", err=True)


@click.command("check")
@click.argument("imei")
@click.option("--imsi", help="The subscriber's IMSI (for IMEI-IMSI pairings).")
@click.option("--sv", "svn", help="Software version (2 digits).")
@click.option("--unknown", type=click.Choice(["unknown", "white", "grey", "black"]), default="unknown",
              show_default=True, help="Answer for equipment no entry matches.")
@store_option
def check_cmd(imei: str, imsi: str | None, svn: str | None, unknown: str, store_url: str) -> None:
    """Decide for an IMEI and print the decision and the entry that matched."""
    try:
        parsed = parse_imei(imei)
        if svn is not None:
            validate_svn(svn)
    except (ImeiError, EntryError) as exc:
        raise click.BadParameter(str(exc)) from exc
    policy = Policy(None if unknown == "unknown" else Status.parse(unknown))

    async def go(s: Store) -> Any:
        async with EquipmentChecker(s, policy, cache_size=0) as checker:
            return await checker.check(CheckRequest(parsed, imsi, svn, "cli"))

    d = _run(store_url, go)
    status = d.status.name.lower() if d.status is not None else "unknown"
    matched = d.matched.value if d.matched else "-"
    click.echo(f"IMEI {parsed.key}: {status} (outcome {d.outcome.value}, matched {matched})")
    click.echo(f"  {d.detail}")
    if not d.available:
        sys.exit(EXIT_UNAVAILABLE)


@click.group("audit")
def audit_group() -> None:
    """The decision audit trail."""


@audit_group.command("export")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@store_option
def audit_export_cmd(file: Path | None, store_url: str) -> None:
    """Export the audit trail as CSV (to FILE, or standard output)."""

    async def go(s: Store) -> list[list[str]]:
        return [[getattr(r, k) for k in AUDIT_FIELDS] async for r in s.audit_export()]

    rows = _run(store_url, go)
    out = sys.stdout if file is None else file.open("w", newline="", encoding="utf-8")
    try:
        w = csv.writer(out, lineterminator="\n")
        w.writerow(AUDIT_FIELDS)
        w.writerows(rows)
    finally:
        if file is not None:
            out.close()
