"""Every row of the S13 front end's answer table, over real sockets, from a real Redis store.

The register is seeded in another process (``eir list import`` and ``eir list add``), exactly as an
operator would; the same ECRs go to ``eir serve`` as a subprocess and to an in-process ``EirServer``
(both module-scoped, same store). Every ECA is also checked for the shape every answer must have
(Session-Id first and copied, identifiers and P bit copied, Proxy-Info copied in order, our
Origin-Host/Realm, no Destination-*, E bit exactly on 3xxx): see ``assert_eca_shape``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from eir.identity import luhn_check_digit
from protocols.diameter import Avp, Message
from protocols.diameter import base_rfc6733 as base
from protocols.diameter import s13_ts29272 as s13
from tests.s13.conftest import (
    EIR_REALM,
    S13Client,
    ThreadedEir,
    eir_cli,
    import_csv,
    server_config,
    start_eir,
    unique_store_url,
    verdict,
)
from tests.support.servers import RedisServer

pytestmark = [pytest.mark.redis]

WHITE, GREY, BLACK = "35209900176148", "35693803564380", "49015420323751"
UNKNOWN = "99999999999999"
WIDE_FIRST, WIDE_LAST = "33333333000000", "33333333899999"  # black range
NARROW_FIRST, NARROW_LAST = "33333333100000", "33333333199999"  # white range inside it
IN_NARROW, IN_WIDE, TAC_ONLY = "33333333150000", "33333333500000", "33333333950000"  # TAC 33333333 is grey
LISTED_IN_NARROW = "33333333150001"  # its own IMEI entry (black) beats the white range
BLACK_TAC_IMEI = "44444444123456"  # TAC 44444444 black
SVN_TAC_IMEI = "55555555123456"  # TAC 55555555 grey; TAC+SVN rule 55555555 {01, 02} black
PAIRED, PAIRED_IMSI, OTHER_IMSI = "66666666123456", "001010123456789", "001010999999999"

SEED_ROWS = [
    f"imei,{GREY},,grey,,,,,,",
    f"imei,{BLACK},,black,stolen,,,,,",
    f"range,{WIDE_FIRST},{WIDE_LAST},black,fraud,,,,,",
    f"range,{NARROW_FIRST},{NARROW_LAST},white,,,,,,",
    "tac,33333333,,grey,,,,,,",
    f"imei,{LISTED_IN_NARROW},,black,lost,,,,,",
    "tac,44444444,,black,counterfeit,,,,,",
    "tac,55555555,,grey,,,,,,",
    "tac,55555555,,black,faulty,,,01 02,,",
    f"imei,{PAIRED},,black,stolen,,,,,",
]


@pytest.fixture(scope="module")
def seeded_store(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh key prefix on the session Redis, seeded by ``eir list import`` and ``eir list add``."""
    url = unique_store_url(redis_server)
    import_csv(tmp_path_factory.mktemp("seed"), SEED_ROWS, url)
    eir_cli("list", "add", WHITE, "--status", "white", store=url)
    eir_cli("list", "add", PAIRED, "--imsi", PAIRED_IMSI, "--status", "white", store=url)
    return url


@pytest.fixture(scope="module", params=["subprocess", "in-process"])
def eir_port(request: pytest.FixtureRequest, seeded_store: str, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[int]:
    """``eir serve`` (subprocess, stopped by SIGTERM, must exit 0) or the same server in process."""
    if request.param == "subprocess":
        proc = start_eir(tmp_path_factory.mktemp("eir"), seeded_store)
        yield proc.port
        assert proc.stop() == 0, proc.fail("exit status after SIGTERM")
    else:
        eir = ThreadedEir(server_config(seeded_store)).start()
        yield eir.port
        eir.stop()


@pytest.fixture
async def mme(eir_port: int) -> Iterator[S13Client]:
    client = await S13Client().connect(eir_port)
    yield client
    await client.close()


def failed_avp(ans: Message) -> list[Avp]:
    """The AVPs inside the answer's single Failed-AVP."""
    found = ans.find_all(base.FAILED_AVP)
    assert len(found) == 1, f"expected one Failed-AVP, got {len(found)}"
    return found[0].children()


def failed_in_terminal_information(ans: Message) -> Avp:
    """Failed-AVP {Terminal-Information {the AVP}}: the offending AVP inside its Grouped parent."""
    (ti,) = failed_avp(ans)
    assert (ti.code, ti.vendor) == (s13.TERMINAL_INFORMATION.code, s13.VENDOR_3GPP)
    (inner,) = ti.children()
    return inner


# ---------------------------------------------------------------------------------------- statuses
async def test_white_grey_black_by_imei(mme: S13Client) -> None:
    assert await mme.verdict(WHITE) == "white"
    assert await mme.verdict(GREY) == "grey"
    assert await mme.verdict(BLACK) == "black"
    ans = await mme.check(BLACK)
    assert ans.get(base.RESULT_CODE) == 2001 and ans.get(s13.EQUIPMENT_STATUS) == s13.EquipmentStatus.BLACKLISTED
    assert ans.find(base.EXPERIMENTAL_RESULT) is None and not ans.is_error


async def test_imei_14_15_16_digits_key_on_the_first_14(mme: S13Client) -> None:
    cd = luhn_check_digit(WHITE)
    assert await mme.verdict(WHITE) == "white"  # 14: TAC + SNR (TS 29.272 §7.3.4)
    assert await mme.verdict(WHITE + cd) == "white"  # 15 with the check digit (VectorCore)
    assert await mme.verdict(WHITE + "0") == "white"  # 15 with the spare digit 0 (TS 22.016)
    assert await mme.verdict(WHITE + "12") == "white"  # 16: IMEISV
    assert await mme.verdict(BLACK + luhn_check_digit(BLACK)) == "black"
    assert await mme.verdict(BLACK + "07") == "black"


async def test_ranges_narrowest_wins_then_tac(mme: S13Client) -> None:
    assert await mme.verdict(IN_NARROW) == "white"  # the white range inside the black one
    assert await mme.verdict(NARROW_FIRST) == "white" and await mme.verdict(NARROW_LAST) == "white"  # inclusive
    assert await mme.verdict(IN_WIDE) == "black"
    assert await mme.verdict(WIDE_FIRST) == "black" and await mme.verdict(WIDE_LAST) == "black"
    assert await mme.verdict(TAC_ONLY) == "grey"  # outside both ranges: the TAC entry
    assert await mme.verdict(LISTED_IN_NARROW) == "black"  # an IMEI entry beats every range


async def test_tac_entry(mme: S13Client) -> None:
    assert await mme.verdict(BLACK_TAC_IMEI) == "black"
    assert await mme.verdict(BLACK_TAC_IMEI[:8] + "000000", sv="05") == "black"


async def test_tac_svn_rule(mme: S13Client) -> None:
    assert await mme.verdict(SVN_TAC_IMEI, sv="01") == "black"
    assert await mme.verdict(SVN_TAC_IMEI, sv="02") == "black"
    assert await mme.verdict(SVN_TAC_IMEI, sv="03") == "grey"  # not in the rule: the TAC entry
    assert await mme.verdict(SVN_TAC_IMEI) == "grey"  # no SVN at all
    assert await mme.verdict(SVN_TAC_IMEI + "02") == "black"  # the SVN of a 16-digit IMEISV
    assert await mme.verdict(SVN_TAC_IMEI + "09") == "grey"


async def test_imei_imsi_pairing(mme: S13Client) -> None:
    # Blacklisted IMEI, white pairing with one IMSI: allowed for that subscriber only (Oracle's BLKAL).
    assert await mme.verdict(PAIRED, imsi=PAIRED_IMSI) == "white"
    assert await mme.verdict(PAIRED, imsi=OTHER_IMSI) == "black"
    assert await mme.verdict(PAIRED) == "black"  # no User-Name
    assert await mme.verdict(PAIRED + "0", imsi=PAIRED_IMSI, sv="01") == "white"


async def test_unknown_equipment_5422_without_status(mme: S13Client) -> None:
    ans = await mme.check(UNKNOWN, sv="01")
    assert verdict(ans) == "unknown"
    assert ans.get(base.RESULT_CODE) is None and ans.get(s13.EQUIPMENT_STATUS) is None and not ans.is_error
    er = ans.find(base.EXPERIMENTAL_RESULT)
    assert er is not None and [(a.code, a.vendor) for a in er.children()] == [
        (base.VENDOR_ID.code, 0), (base.EXPERIMENTAL_RESULT_CODE.code, 0)]


async def test_3gpp2_meid_in_the_imei_space(mme: S13Client) -> None:
    # An all-decimal MEID is the IMEI it equals (3GPP2 S.R0048); a hex one is unknown equipment here.
    assert await mme.verdict(None, meid=bytes.fromhex(BLACK)) == "black"
    assert await mme.verdict(None, meid=bytes.fromhex(WHITE), sv="01") == "white"
    assert await mme.verdict(None, meid=bytes.fromhex("A0000012345678")) == "unknown"
    ans = await mme.check(None, meid=bytes.fromhex("A00000123456"))  # 6 octets, not 7
    assert ans.get(base.RESULT_CODE) == base.ResultCode.DIAMETER_INVALID_AVP_VALUE
    inner = failed_in_terminal_information(ans)
    assert (inner.code, inner.data) == (s13.MEID_3GPP2.code, bytes.fromhex("A00000123456"))


# ---------------------------------------------------------------------------------------- malformed ECRs
async def test_missing_imei_5005_with_failed_avp(mme: S13Client) -> None:
    ans = await mme.check(None, sv="01")  # Terminal-Information with only a Software-Version
    assert ans.get(base.RESULT_CODE) == base.ResultCode.DIAMETER_MISSING_AVP and not ans.is_error
    assert ans.get(s13.EQUIPMENT_STATUS) is None and ans.find(base.EXPERIMENTAL_RESULT) is None
    inner = failed_in_terminal_information(ans)
    assert (inner.code, inner.vendor) == (s13.IMEI.code, s13.VENDOR_3GPP)
    assert inner.data == bytes(14)  # RFC 6733 §7.5: zero-filled, the minimum length of an IMEI
    assert "IMEI" in ans.get(base.ERROR_MESSAGE)


async def test_missing_terminal_information_5005(mme: S13Client) -> None:
    ans = await mme.check(None, terminal_information=False)
    assert ans.get(base.RESULT_CODE) == base.ResultCode.DIAMETER_MISSING_AVP and not ans.is_error
    (missing,) = failed_avp(ans)
    assert (missing.code, missing.vendor) == (s13.TERMINAL_INFORMATION.code, s13.VENDOR_3GPP)


@pytest.mark.parametrize("imei", ["12345", "3520990017614", "35209900176148123", "3520990017614A"])
async def test_bad_imei_5004_with_failed_avp(mme: S13Client, imei: str) -> None:
    ans = await mme.check(imei, sv="01")
    assert ans.get(base.RESULT_CODE) == base.ResultCode.DIAMETER_INVALID_AVP_VALUE and not ans.is_error
    inner = failed_in_terminal_information(ans)
    assert (inner.code, inner.vendor) == (s13.IMEI.code, s13.VENDOR_3GPP)
    assert inner.value(s13.IMEI) == imei  # the offending value, as received
    assert ans.get(s13.EQUIPMENT_STATUS) is None


@pytest.mark.parametrize("sv", ["1", "123", "ab"])
async def test_bad_software_version_5004_with_failed_avp(mme: S13Client, sv: str) -> None:
    ans = await mme.check(WHITE, sv=sv)
    assert ans.get(base.RESULT_CODE) == base.ResultCode.DIAMETER_INVALID_AVP_VALUE and not ans.is_error
    inner = failed_in_terminal_information(ans)
    assert (inner.code, inner.vendor) == (s13.SOFTWARE_VERSION.code, s13.VENDOR_3GPP)
    assert inner.value(s13.SOFTWARE_VERSION) == sv


@pytest.mark.parametrize("user", ["not-an-imsi", "12345", "1234567890123456"])
async def test_bad_user_name_5004_with_failed_avp(mme: S13Client, user: str) -> None:
    ans = await mme.check(WHITE, imsi=user)
    assert ans.get(base.RESULT_CODE) == base.ResultCode.DIAMETER_INVALID_AVP_VALUE and not ans.is_error
    (failed,) = failed_avp(ans)
    assert (failed.code, failed.vendor) == (base.USER_NAME.code, 0) and failed.value(base.USER_NAME) == user


# ---------------------------------------------------------------------------------------- routing AVPs
async def test_foreign_realm_3003_with_e_bit(mme: S13Client) -> None:
    ans = await mme.check(WHITE, dest_realm="foreign.example")
    assert ans.is_error and ans.get(base.RESULT_CODE) == base.ResultCode.DIAMETER_REALM_NOT_SERVED
    assert ans.get(s13.EQUIPMENT_STATUS) is None
    # The realm is matched without regard to case (DiameterIdentity).
    assert await mme.verdict(WHITE, dest_realm=EIR_REALM.upper()) == "white"


async def test_destination_host_absent_ours_or_other(mme: S13Client) -> None:
    assert await mme.verdict(WHITE) == "white"  # absent (what MMEs send)
    assert await mme.verdict(WHITE, dest_host="eir.test") == "white"
    assert await mme.verdict(WHITE, dest_host="EIR.Test") == "white"
    ans = await mme.check(WHITE, dest_host="other-eir.test")
    assert ans.is_error and ans.get(base.RESULT_CODE) == base.ResultCode.DIAMETER_UNABLE_TO_DELIVER


async def test_proxy_info_copied_in_order_and_route_record_accepted(mme: S13Client) -> None:
    proxies = (("dra1.test", b"\x00state-1"), ("dra2.test", b"state-2\xff"))
    for imei, want in ((BLACK, "black"), (UNKNOWN, "unknown")):
        ans = await mme.check(imei, proxy_info=proxies, route_record=("dra1.test", "dra2.test"))
        assert verdict(ans) == want  # assert_eca_shape compared the Proxy-Info AVPs byte for byte
        got = [(p.find(base.PROXY_HOST).value(base.PROXY_HOST), p.find(base.PROXY_STATE).value(base.PROXY_STATE))
               for p in ans.find_all(base.PROXY_INFO)]
        assert got == list(proxies)
        assert ans.find(base.ROUTE_RECORD) is None  # Route-Record belongs to requests
    # Error answers copy Proxy-Info as well (RFC 6733 §6.2).
    ans = await mme.check(WHITE, dest_realm="foreign.example", proxy_info=proxies)
    assert ans.is_error and len(ans.find_all(base.PROXY_INFO)) == 2
    ans = await mme.check("123", proxy_info=proxies, route_record=("dra1.test",))
    assert ans.get(base.RESULT_CODE) == 5004 and len(ans.find_all(base.PROXY_INFO)) == 2


# ---------------------------------------------------------------------------------------- unknown policy
async def test_unknown_policy_grey_answers_2001_status_2(seeded_store: str, eir_factory) -> None:  # type: ignore[no-untyped-def]
    eir = eir_factory(seeded_store, "--unknown-equipment", "grey")
    mme = await S13Client().connect(eir.port)
    try:
        ans = await mme.check(UNKNOWN)
        assert ans.get(base.RESULT_CODE) == 2001 and ans.get(s13.EQUIPMENT_STATUS) == 2
        assert ans.find(base.EXPERIMENTAL_RESULT) is None
        assert await mme.verdict(BLACK) == "black" and await mme.verdict(WHITE) == "white"  # listed: unchanged
        assert await mme.verdict(PAIRED, imsi=PAIRED_IMSI) == "white"
    finally:
        await mme.close()
    assert eir.stop() == 0


def test_seed_was_applied_by_the_cli(seeded_store: str, tmp_path: Path) -> None:
    """``eir check`` in another process agrees with what the server answers (same store, same rules)."""
    out = eir_cli("check", PAIRED, "--imsi", PAIRED_IMSI, store=seeded_store, cwd=tmp_path).stdout
    assert "white" in out and "black-allowed-by-pairing" in out
    out = eir_cli("check", IN_NARROW, store=seeded_store, cwd=tmp_path).stdout
    assert "white" in out and "range" in out
