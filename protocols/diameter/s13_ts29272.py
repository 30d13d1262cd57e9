"""The S13/S13' interface as data (3GPP TS 29.272, MME/SGSN <-> EIR).

Application 16777252 (§7.1.8), command 324 ME-Identity-Check (§7.2.19 ECR, §7.2.20 ECA), the AVPs of
Table 7.3.1/1 that S13 uses, Equipment-Status values (§7.3.51) and the S13 Experimental-Result-Code
(§7.4.3.5). AVP rows cross-checked against freeDiameter's dict_dcca_3gpp and Wireshark's dictionary.
"""

from __future__ import annotations

import enum

from . import base_rfc6733 as base
from .dictionary import AvpDef, AvpType, CommandDef, Grammar, fixed, many, optional, required

__all__ = [
    "APPLICATION_ID",
    "AVPS",
    "COMMANDS",
    "ECR",
    "EQUIPMENT_STATUS",
    "IMEI",
    "MEID_3GPP2",
    "SOFTWARE_VERSION",
    "TERMINAL_INFORMATION",
    "VENDOR_3GPP",
    "EquipmentStatus",
    "ExperimentalResultCode",
]

#: 3GPP's IANA enterprise number (TS 29.230 §7).
VENDOR_3GPP = 10415
#: §7.1.8: S13/S13' application identifier.
APPLICATION_ID = 16777252


class EquipmentStatus(enum.IntEnum):
    """Equipment-Status (§7.3.51). Rel-17 renames them PERMITTED/PROHIBITED/TRACKING-LISTED."""

    WHITELISTED = 0
    BLACKLISTED = 1
    GREYLISTED = 2


class ExperimentalResultCode(enum.IntEnum):
    """Experimental-Result-Code values S13 uses (§7.4.3.5)."""

    DIAMETER_ERROR_EQUIPMENT_UNKNOWN = 5422


# --- Table 7.3.1/1 (all M and V set, vendor 10415) ---------------------------------------------------
IMEI = AvpDef(1402, "IMEI", AvpType.UTF8_STRING, vendor=VENDOR_3GPP)  # §7.3.4
SOFTWARE_VERSION = AvpDef(1403, "Software-Version", AvpType.UTF8_STRING, vendor=VENDOR_3GPP)  # §7.3.5
MEID_3GPP2 = AvpDef(1471, "3GPP2-MEID", AvpType.OCTET_STRING, vendor=VENDOR_3GPP)  # §7.3.6
TERMINAL_INFORMATION = AvpDef(  # §7.3.3
    1401, "Terminal-Information", AvpType.GROUPED, vendor=VENDOR_3GPP,
    grammar=Grammar((optional(IMEI), optional(MEID_3GPP2), optional(SOFTWARE_VERSION))),
)
EQUIPMENT_STATUS = AvpDef(  # §7.3.51
    1445, "Equipment-Status", AvpType.ENUMERATED, vendor=VENDOR_3GPP,
    enum_values={m.value: m.name for m in EquipmentStatus},
)

AVPS = (TERMINAL_INFORMATION, IMEI, SOFTWARE_VERSION, MEID_3GPP2, EQUIPMENT_STATUS)

# --- §7.2.19 ECR / §7.2.20 ECA ----------------------------------------------------------------------
ECR = CommandDef(
    324, "ME-Identity-Check", APPLICATION_ID,
    request=Grammar((
        fixed(base.SESSION_ID),
        optional(base.DRMP),
        optional(base.VENDOR_SPECIFIC_APPLICATION_ID),
        required(base.AUTH_SESSION_STATE),
        required(base.ORIGIN_HOST),
        required(base.ORIGIN_REALM),
        optional(base.DESTINATION_HOST),
        required(base.DESTINATION_REALM),
        required(TERMINAL_INFORMATION),
        optional(base.USER_NAME),
        many(base.PROXY_INFO),
        many(base.ROUTE_RECORD),
    )),
    answer=Grammar((
        fixed(base.SESSION_ID),
        optional(base.DRMP),
        optional(base.VENDOR_SPECIFIC_APPLICATION_ID),
        optional(base.RESULT_CODE),
        optional(base.EXPERIMENTAL_RESULT),
        required(base.AUTH_SESSION_STATE),
        required(base.ORIGIN_HOST),
        required(base.ORIGIN_REALM),
        optional(EQUIPMENT_STATUS),
        optional(base.FAILED_AVP),
        many(base.PROXY_INFO),
        many(base.ROUTE_RECORD),
    )),
    abbreviation=("ECR", "ECA"),
)

COMMANDS = (ECR,)
