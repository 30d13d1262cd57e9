"""IMEI / IMEISV / MEID parsing (TS 23.003 §6.2, Annex B; protocol-facts §5)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eir.identity import (
    Imei,
    ImeiError,
    luhn_check_digit,
    meid_from_bytes,
    parse_imei,
    parse_meid,
    parse_tac,
)


@pytest.mark.parametrize(("digits", "cd"), [("26053179311383", "7"), ("35209900176148", "1"), ("49015420323751", "8")])
def test_luhn_vectors(digits: str, cd: str) -> None:
    assert luhn_check_digit(digits) == cd
    assert parse_imei(digits + cd, check_luhn=True).key == digits


def test_fourteen_fifteen_sixteen_digits() -> None:
    assert parse_imei("35209900176148") == Imei("35209900176148")
    i15 = parse_imei("352099001761481")
    assert (i15.key, i15.spare, i15.svn, i15.check_digit) == ("35209900176148", "1", None, "1")
    spare = parse_imei("352099001761480")  # spare digit 0 from the network: accepted without Luhn
    assert spare.key == "35209900176148" and spare.spare == "0"
    sv = parse_imei("3520990017614812")
    assert (sv.key, sv.svn, sv.tac, sv.snr) == ("35209900176148", "12", "35209900", "176148")
    assert parse_imei("imeisv-3520990017614812").svn == "12"
    assert parse_imei("imei-352099001761481").key == "35209900176148"
    assert parse_imei(" 35-209900-176148-1 ", check_luhn=True).imei15 == "352099001761481"


def test_luhn_only_when_asked() -> None:
    assert parse_imei("352099001761489").key == "35209900176148"
    with pytest.raises(ImeiError) as e:
        parse_imei("352099001761489", check_luhn=True)
    assert "check digit 9 is wrong" in e.value.reason and "Luhn gives 1" in e.value.reason


@pytest.mark.parametrize(
    ("text", "reason"),
    [("", "empty"), ("3520990017614", "13 digits"), ("35209900176148123", "17 digits"),
     ("3520990017614A", "non-digit character 'A'"), ("٣٥٢٠٩٩٠٠١٧٦١٤٨", "non-digit")],
)
def test_malformed(text: str, reason: str) -> None:
    with pytest.raises(ImeiError) as e:
        parse_imei(text)
    assert reason in e.value.reason
    assert isinstance(e.value, ValueError)


@given(st.text(max_size=24))
def test_any_string_parses_or_raises_imei_error(text: str) -> None:
    try:
        imei = parse_imei(text)
    except ImeiError as exc:
        assert exc.reason
        return
    assert len(imei.key) == 14 and imei.key.isdigit()
    assert imei.svn is None or (len(imei.svn) == 2 and imei.svn.isdigit())


@given(st.from_regex(r"\A[0-9]{14}\Z"))
def test_check_digit_round_trip(key: str) -> None:
    full = key + luhn_check_digit(key)
    assert parse_imei(full, check_luhn=True).key == key
    wrong = key + str((int(luhn_check_digit(key)) + 1) % 10)
    with pytest.raises(ImeiError):
        parse_imei(wrong, check_luhn=True)


def test_tac() -> None:
    assert parse_tac("35209900") == "35209900"
    with pytest.raises(ImeiError):
        parse_tac("3520990")


def test_meid() -> None:
    m = parse_meid("A0000000002329")
    assert (m.manufacturer, m.serial) == ("A0000000", "002329")
    assert m.as_imei() is None
    assert parse_meid("a0 00 00 00 00 23 29").hex == "A0000000002329"
    assert parse_meid(m.decimal) == m  # 18-digit decimal form round trip
    assert parse_meid("35209900176148").as_imei() == Imei("35209900176148")
    assert meid_from_bytes(bytes.fromhex("A0000000002329")) == m
    assert parse_meid(m.hex + m.check_digit, check_luhn=True) == m
    with pytest.raises(ImeiError):
        parse_meid("A000000000232G")
    with pytest.raises(ImeiError):
        meid_from_bytes(b"\x00" * 6)
