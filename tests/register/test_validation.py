"""Strict import's first pass in several processes gives exactly what one pass gives."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from eir.register import validation
from eir.register.csvio import CsvFormatError
from eir.register.validation import validate_file


def write_file(path: Path, rows: int, *, seed: int, newline: str = "\n", quoted: bool = False) -> None:
    rnd = random.Random(seed)
    out = ["kind,imei,status,reason,reporter"]
    for i in range(rows):
        k = f"35{rnd.randrange(10**12):012d}"
        roll = rnd.random()
        if roll < 0.02:
            out.append(f"imei,{k[:9]},black,stolen,ORG1")  # too short
        elif roll < 0.03:
            out.append(f"imei,{k},blue,stolen,ORG1")  # bad status
        elif roll < 0.035:
            out.append("")  # blank line: skipped, still counted in line numbers
        elif quoted and i == rows // 2:
            out.append(f'imei,{k},black,stolen,"ORG\nWITH NEWLINE"')
        else:
            out.append(f"imei,{k},black,stolen,ORG{i % 7}")
    path.write_bytes((newline.join(out) + newline).encode())


@pytest.fixture
def parallel_always(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validation, "PARALLEL_MIN_BYTES", 0)


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("workers", [2, 3])
async def test_parallel_validation_equals_one_pass(tmp_path: Path, parallel_always: None, newline: str,
                                                    workers: int) -> None:
    path = tmp_path / "f.csv"
    write_file(path, 5000, seed=workers, newline=newline)
    assert validation._slices(path, workers) is not None  # really cut in pieces
    one = validation._serial(path, "ME", None, 1000, None)
    many = await validate_file(path, reporter="ME", status=None, chunk=1000, workers=workers)
    assert many == one
    assert one[1], "the file was meant to have bad rows"
    lines = path.read_bytes().decode().split(newline)
    for bad in one[1][:20]:  # the line numbers point at the bad rows themselves
        assert lines[bad.line - 1].count(",") == 4 and ("blue" in lines[bad.line - 1] or len(
            lines[bad.line - 1].split(",")[1]) == 9)


async def test_a_file_with_quotes_is_validated_in_one_pass(tmp_path: Path, parallel_always: None) -> None:
    path = tmp_path / "q.csv"
    write_file(path, 2000, seed=5, quoted=True)
    assert validation._slices(path, 2) is None
    assert await validate_file(path, reporter="ME", status=None, chunk=500, workers=2) == \
        validation._serial(path, "ME", None, 500, None)


async def test_a_bad_header_fails_at_once(tmp_path: Path, parallel_always: None) -> None:
    path = tmp_path / "h.csv"
    path.write_text("imei,colour\n" + "35209900176148,black\n" * 1000)
    with pytest.raises(CsvFormatError, match="unknown column"):
        await validate_file(path, reporter="ME", status=None, chunk=100, workers=2)
