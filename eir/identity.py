"""Equipment identities: IMEI, IMEISV and 3GPP2 MEID (TS 23.003 §6.2, Annex B; TS 22.016; 3GPP2 S.R0048).

Networks send IMEIs in several shapes; this module accepts all of them and normalises to the 14-digit
key (TAC + SNR) every list is keyed on:

* 14 digits: TAC (8) + SNR (6), what TS 29.272 §7.3.4 says S13 carries;
* 15 digits: TAC + SNR + check digit (CD) or spare digit 0 (TS 23.003 §6.2.1; MMEs such as VectorCore
  send the CD, 22.016 §3 says the MS sends a spare 0);
* 16 digits: IMEISV = TAC + SNR + software version number (SVN) (TS 23.003 §6.2.2);
* the N5g-eir PEI forms ``imei-<15 digits>`` and ``imeisv-<16 digits>`` (TS 29.571 ``Pei``).

The Luhn check digit (TS 23.003 Annex B) is verified only when asked (``check_luhn=True``): for IMEIs
typed by people or read from import files. It is never transmitted at IMEI check (TS 22.016 §3), so
network input is not checked.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Imei",
    "ImeiError",
    "Meid",
    "luhn_check_digit",
    "meid_from_bytes",
    "parse_imei",
    "parse_meid",
    "parse_tac",
]

_DIGITS = frozenset("0123456789")
_HEX = frozenset("0123456789ABCDEF")
_SEPARATORS = str.maketrans("", "", " -./")


class ImeiError(ValueError):
    """A malformed equipment identity; ``reason`` says what is wrong, ``text`` is the input."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(f"invalid equipment identity {text!r}: {reason}")
        self.text = text
        self.reason = reason


def luhn_check_digit(digits14: str) -> str:
    """Return the Luhn check digit of 14 decimal digits (TS 23.003 Annex B.2).

    Digits are labelled D14..D1 from the left; D1, D3 .. D13 (the odd labels, i.e. the last digit and
    every second digit before it) are doubled, the digit sums of the products are added to the other
    digits, and CD = (10 - sum mod 10) mod 10. ``luhn_check_digit("26053179311383") == "7"`` (B.3).
    """
    total = 0
    for i, ch in enumerate(reversed(digits14)):
        d = ord(ch) - 48
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


@dataclass(frozen=True, slots=True)
class Imei:
    """A parsed IMEI or IMEISV (TS 23.003 §6.2).

    ``key`` is the 14-digit TAC+SNR every list is keyed on; ``svn`` is the software version of an
    IMEISV (None otherwise); ``check_digit`` is the Luhn digit computed from the key; ``spare`` is the
    15th digit exactly as received (a check digit or a spare 0), None when absent.
    """

    key: str
    svn: str | None = None
    spare: str | None = None

    @property
    def tac(self) -> str:
        """Type Allocation Code: the first 8 digits."""
        return self.key[:8]

    @property
    def snr(self) -> str:
        """Serial number: digits 9 to 14."""
        return self.key[8:]

    @property
    def check_digit(self) -> str:
        """The Luhn check digit of the key (TS 23.003 Annex B)."""
        return luhn_check_digit(self.key)

    @property
    def imei15(self) -> str:
        """The 15-digit form with its check digit, as printed on devices."""
        return self.key + self.check_digit

    def __str__(self) -> str:
        return self.key


def _clean(text: str) -> str:
    s = text.strip()
    low = s[:7].lower()
    if low.startswith("imeisv-"):
        s = s[7:]
    elif low.startswith("imei-"):
        s = s[5:]
    return s.translate(_SEPARATORS)


def parse_imei(text: str, *, check_luhn: bool = False) -> Imei:
    """Parse an IMEI (14 or 15 digits) or IMEISV (16 digits) into an :class:`Imei`.

    Surrounding blanks, the N5g-eir prefixes ``imei-``/``imeisv-`` and the separators space, ``-``, ``.``
    and ``/`` (as people type them) are ignored. With ``check_luhn`` a 15-digit IMEI must end in its
    correct Luhn check digit and a 14-digit one is accepted as is; without it the 15th digit is kept in
    ``spare`` and not checked (network input, TS 22.016 §3). Raises :class:`ImeiError` with the reason.
    """
    if not isinstance(text, str):
        raise ImeiError(repr(text), f"expected a string, got {type(text).__name__}")
    s = _clean(text)
    if not s:
        raise ImeiError(text, "empty")
    if not _DIGITS.issuperset(s):
        bad = next(ch for ch in s if ch not in _DIGITS)
        raise ImeiError(text, f"non-digit character {bad!r}")
    n = len(s)
    if n == 14:
        return Imei(s)
    if n == 15:
        key, cd = s[:14], s[14]
        if check_luhn and luhn_check_digit(key) != cd:
            raise ImeiError(text, f"check digit {cd} is wrong (Luhn gives {luhn_check_digit(key)})")
        return Imei(key, spare=cd)
    if n == 16:
        return Imei(s[:14], svn=s[14:])
    raise ImeiError(text, f"{n} digits; an IMEI has 14 or 15 digits, an IMEISV 16")


def parse_tac(text: str) -> str:
    """Validate a Type Allocation Code (8 digits, TS 23.003 §6.2.1) and return it."""
    s = text.strip()
    if len(s) != 8 or not _DIGITS.issuperset(s):
        raise ImeiError(text, "a TAC is exactly 8 decimal digits")
    return s


def _luhn16(hex14: str) -> str:
    """Luhn check digit computed in base 16 (3GPP2 S.R0048 §A.2) for a hex MEID."""
    total = 0
    for i, ch in enumerate(reversed(hex14)):
        d = int(ch, 16)
        if i % 2 == 0:
            d *= 2
            d = d // 16 + d % 16
        total += d
    return format((16 - total % 16) % 16, "X")


@dataclass(frozen=True, slots=True)
class Meid:
    """A 3GPP2 Mobile Equipment Identifier: 56 bits = 14 hex digits (manufacturer code 8 + serial 6).

    MEIDs whose digits are all decimal (regional code below A0) share the IMEI number space
    (3GPP2 S.R0048); :meth:`as_imei` then gives the IMEI key they are listed under.
    """

    hex: str

    @property
    def manufacturer(self) -> str:
        return self.hex[:8]

    @property
    def serial(self) -> str:
        return self.hex[8:]

    @property
    def check_digit(self) -> str:
        return _luhn16(self.hex) if not _DIGITS.issuperset(self.hex) else luhn_check_digit(self.hex)

    @property
    def decimal(self) -> str:
        """The 18-digit decimal form: manufacturer code in 10 digits, serial in 8."""
        return f"{int(self.manufacturer, 16):010d}{int(self.serial, 16):08d}"

    def as_imei(self) -> Imei | None:
        """The IMEI this MEID equals when it is all-decimal, else None."""
        return Imei(self.hex) if _DIGITS.issuperset(self.hex) else None


def parse_meid(text: str, *, check_luhn: bool = False) -> Meid:
    """Parse a MEID: 14 hex digits, 15 with a check digit, or the 18-digit decimal form."""
    s = text.strip().upper().translate(_SEPARATORS)
    if s.startswith("0X"):
        s = s[2:]
    if len(s) == 18 and _DIGITS.issuperset(s):
        manu, serial = int(s[:10]), int(s[10:])
        if manu >= 1 << 32 or serial >= 1 << 24:
            raise ImeiError(text, "decimal MEID out of range (manufacturer < 2^32, serial < 2^24)")
        return Meid(f"{manu:08X}{serial:06X}")
    if not s or not _HEX.issuperset(s):
        raise ImeiError(text, "a MEID is 14 hexadecimal digits (15 with a check digit, or 18 decimal)")
    if len(s) == 14:
        return Meid(s)
    if len(s) == 15:
        m = Meid(s[:14])
        if check_luhn and m.check_digit != s[14]:
            raise ImeiError(text, f"check digit {s[14]} is wrong (expected {m.check_digit})")
        return m
    raise ImeiError(text, f"{len(s)} characters; a MEID has 14 hex digits")


def meid_from_bytes(data: bytes) -> Meid:
    """Decode the 3GPP2-MEID AVP (TS 29.272 §7.3.3: 7 octets, 56 bits, most significant first)."""
    if len(data) != 7:
        raise ImeiError(data.hex(), f"{len(data)} octets; a binary MEID is 7")
    return Meid(data.hex().upper())
