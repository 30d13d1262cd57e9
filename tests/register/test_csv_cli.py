"""CSV import/export and the ``eir`` CLI (CliRunner, and one real subprocess)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from eir.cli import main
from eir.identity import luhn_check_digit
from eir.register import open_store
from eir.register.csvio import HEADER, read_rows
from eir.register.importer import import_csv
from eir.register.model import Granularity, Reason, Status
from eir.register.store import Store

ROOT = Path(__file__).resolve().parents[2]
K1 = "35209900176148"


def full(key: str) -> str:
    return key + luhn_check_digit(key)


GOOD = f"""kind,imei,last,status,reason,reporter,imsi,svn,created,expires
imei,{full(K1)},,black,stolen,orgA,,,2026-01-02,
imei,{K1},,white,,orgA,208011234567890,,,2030-01-01T00:00:00Z
range,35209901000000,35209901009999,grey,faulty,orgB,,,,
tac,49015420,,black,counterfeit,,,,,
tac,49015420,,grey,,,,12 13,,
,26053179311383,,grey,test,,,,1700000000,
"""


def test_read_rows_reports_line_numbers() -> None:
    text = GOOD + "imei,352099001761489,,black,,,,,,\nimei,123,,black\nimei,35209900176148,,purple\n,,,\n" \
        "range,35209901000000,35209900000000,grey\n"
    rows, bad = [], []
    for r, b in read_rows(text.splitlines(keepends=True), reporter="me"):
        rows += r
        bad += b
    assert len(rows) == 6
    assert [b.line for b in bad] == [8, 9, 10, 11, 12]
    assert "check digit 9 is wrong" in bad[0].reason
    assert "3 digits" in bad[1].reason
    assert "status 'purple'" in bad[2].reason
    assert "imei column is empty" in bad[3].reason
    assert "ends before it starts" in bad[4].reason
    e = {r.entry.ident: r.entry for r in rows}
    tac = e["tac:49015420"]
    assert tac.reporter == "me" and tac.reason is Reason.COUNTERFEIT
    assert e["tac:49015420:12 13"].granularity is Granularity.TAC_SVN
    assert e[f"imei:{K1}:208011234567890"].expires == 1893456000
    assert e["imei:26053179311383"].created == 1700000000


def test_gsma_style_ranges() -> None:
    text = f"imei_start,imei_end,reason_code,reporting_org\n35209901000000,35209901009999,1,GSMA-X\n" \
           f"{full(K1)},{full(K1)},2,GSMA-Y\n"
    (rows, bad), = read_rows(text.splitlines(keepends=True), reporter="me")
    assert not bad
    assert rows[0].entry.granularity is Granularity.RANGE and rows[0].entry.status is Status.BLACK
    assert rows[0].entry.reason is Reason.STOLEN and rows[0].entry.reporter == "GSMA-X"
    assert rows[1].entry.granularity is Granularity.IMEI and rows[1].entry.reason is Reason.LOST


async def test_strict_import_applies_nothing_on_a_bad_file(tmp_path: Path, store: Store) -> None:
    p = tmp_path / "bad.csv"
    p.write_text(GOOD + "imei,999,,black\n")
    report = await import_csv(store, p, reporter="me")
    assert report.applied_nothing and report.applied == 0 and [b.line for b in report.bad] == [8]
    assert [e async for c in store.export() for e in c] == []
    report = await import_csv(store, p, reporter="me", strict=False, chunk=3)
    assert report.applied == 6 and [b.line for b in report.bad] == [8]
    # idempotent: importing again changes nothing
    before = sorted([e async for c in store.export() for e in c], key=lambda e: e.ident)
    report = await import_csv(store, p, reporter="me", strict=False)
    after = sorted([e async for c in store.export() for e in c], key=lambda e: e.ident)
    assert report.applied == 6 and before == after and len(after) == 6


def test_cli_round_trip(tmp_path: Path) -> None:
    url = f"memory://{tmp_path / 'reg.eir'}"
    run = CliRunner().invoke
    r = run(main, ["list", "add", full(K1), "--status", "black", "--reason", "stolen", "--reporter", "orgA",
                   "--store", url])
    assert r.exit_code == 0, r.output
    assert "added: IMEI 35209900176148: black (stolen) by orgA" in r.output
    r = run(main, ["list", "add", K1, "--status", "white", "--imsi", "208011234567890", "--reporter", "orgA",
                   "--store", url])
    assert r.exit_code == 0, r.output
    r = run(main, ["list", "add", "--tac", "35209900", "--status", "grey", "--store", url])
    assert r.exit_code == 0, r.output
    r = run(main, ["list", "add", "--range", "35209900000000", "35209900099999", "--status", "white",
                   "--reporter", "orgB", "--store", url])
    assert r.exit_code == 0, r.output
    r = run(main, ["check", K1, "--store", url])
    assert r.exit_code == 0 and "black (outcome black, matched imei)" in r.output and "stolen" in r.output
    r = run(main, ["check", K1 + "12", "--imsi", "208011234567890", "--store", url])
    assert "outcome black-allowed-by-pairing" in r.output
    r = run(main, ["check", "35209900000001", "--store", url])
    assert "matched range" in r.output
    r = run(main, ["check", "11111111111111", "--unknown", "grey", "--store", url])
    assert "grey (outcome grey, matched default)" in r.output
    r = run(main, ["list", "show", K1, "--store", url])
    assert r.output.count("\n") == 3  # its two IMEI-level entries and its TAC (the range is elsewhere)
    # GSMA rule: orgB cannot remove orgA's entry unless forced
    r = run(main, ["list", "remove", K1, "--reporter", "orgB", "--store", url])
    assert r.exit_code == 1 and "belongs to 'orgA'" in r.output
    r = run(main, ["list", "remove", K1, "--reporter", "orgB", "--force", "--store", url])
    assert r.exit_code == 0 and "removed" in r.output
    r = run(main, ["list", "remove", K1, "--reporter", "orgA", "--store", url])
    assert r.exit_code == 1 and "no entry imei:35209900176148" in r.output
    out = tmp_path / "out.csv"
    r = run(main, ["list", "export", str(out), "--store", url])
    assert r.exit_code == 0
    lines = out.read_text().splitlines()
    assert lines[0] == ",".join(HEADER) and len(lines) == 4
    # the export imports back into another store unchanged
    url2 = f"memory://{tmp_path / 'reg2.eir'}"
    r = run(main, ["list", "import", str(out), "--store", url2])
    assert r.exit_code == 0 and "applied 3 of 3 rows" in r.output, r.output
    r = run(main, ["list", "export", "--store", url2])
    assert r.output.splitlines() == lines


def test_cli_usage_errors(tmp_path: Path) -> None:
    url = f"memory://{tmp_path / 'reg.eir'}"
    run = CliRunner().invoke
    r = run(main, ["list", "add", "352099001761489", "--status", "black", "--store", url])
    assert r.exit_code == 2 and "check digit 9 is wrong" in r.output
    r = run(main, ["list", "add", "--status", "black", "--store", url])
    assert r.exit_code == 2 and "exactly one of" in r.output
    r = run(main, ["check", K1, "--store", "mongodb://x"])
    assert r.exit_code == 2 and "scheme 'mongodb'" in r.output
    r = run(main, ["check", K1, "--store", "redis://127.0.0.1:1/0?colour=red"])
    assert r.exit_code == 2 and "unknown option(s) ['colour']" in r.output
    bad = tmp_path / "bad.csv"
    bad.write_text("kind,imei,status\nimei,123,black\n")
    r = run(main, ["list", "import", str(bad), "--store", url])
    assert r.exit_code == 1 and "bad.csv:2: bad row" in r.output and "nothing applied" in r.output


def test_cli_store_unavailable_exit_code() -> None:
    r = CliRunner().invoke(main, ["list", "add", K1, "--status", "black", "--store", "redis://127.0.0.1:1/0?timeout=0.5"])
    assert r.exit_code == 3 and "store unavailable" in r.output


@pytest.mark.redis
def test_real_subprocess_against_redis(redis_server: object, tmp_path: Path) -> None:
    from tests.support.servers import RedisServer

    assert isinstance(redis_server, RedisServer)
    url = f"{redis_server.url}?prefix=cli{os.getpid()}&buckets=1024"
    csv_file = tmp_path / "in.csv"
    csv_file.write_text(GOOD)
    env = {**os.environ, "EIR_STORE": url, "EIR_REPORTER": "orgZ"}
    exe = str(ROOT / ".venv" / "bin" / "eir")

    def eir(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([exe, *args], capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)

    r = eir("list", "import", str(csv_file), "--progress")
    assert r.returncode == 0 and "applied 6 of 6 rows" in r.stdout, r.stderr
    r = eir("check", "49015420000000", "--sv", "12")
    assert r.returncode == 0 and "matched tac+svn" in r.stdout
    r = eir("list", "remove", "--tac", "49015420")
    assert r.returncode == 0, r.stderr  # reporter orgZ (from EIR_REPORTER) reported it
    r = eir("check", "49015420000000")
    assert "unknown (outcome unknown" in r.stdout

    async def cleanup() -> None:
        s = open_store(url)
        await s.flush_prefix()  # type: ignore[attr-defined]
        await s.close()

    import asyncio

    asyncio.run(cleanup())
