"""The Diameter base protocol as data (RFC 6733).

AVPs from the §4.5 table, commands from §5 with their Command Code Formats, Result-Code values from
§7.1 and the other enumerations. Handlers import names from here; they never contain literal codes.
"""

from __future__ import annotations

import enum

from .dictionary import AvpDef, AvpType, CommandDef, Flag, Grammar, many, optional, required

__all__ = [
    "ACCT_APPLICATION_ID",
    "ANSWER_MESSAGE",
    "AUTH_APPLICATION_ID",
    "AUTH_SESSION_STATE",
    "AVPS",
    "CEA_GRAMMAR",
    "CER",
    "COMMANDS",
    "COMMON_MESSAGES_APPLICATION",
    "DESTINATION_HOST",
    "DESTINATION_REALM",
    "DISCONNECT_CAUSE",
    "DPR",
    "DRMP",
    "DWR",
    "ERROR_MESSAGE",
    "ERROR_REPORTING_HOST",
    "EXPERIMENTAL_RESULT",
    "EXPERIMENTAL_RESULT_CODE",
    "FAILED_AVP",
    "FIRMWARE_REVISION",
    "HOST_IP_ADDRESS",
    "INBAND_SECURITY_ID",
    "ORIGIN_HOST",
    "ORIGIN_REALM",
    "ORIGIN_STATE_ID",
    "PRODUCT_NAME",
    "PROXY_HOST",
    "PROXY_INFO",
    "PROXY_STATE",
    "RELAY_APPLICATION",
    "RESULT_CODE",
    "ROUTE_RECORD",
    "SESSION_ID",
    "SUPPORTED_VENDOR_ID",
    "USER_NAME",
    "VENDOR_ID",
    "VENDOR_SPECIFIC_APPLICATION_ID",
    "AuthSessionState",
    "DisconnectCause",
    "ResultCode",
]

#: §2.4: application 0 carries the base protocol's own commands.
COMMON_MESSAGES_APPLICATION = 0
#: §2.4: the Relay application id, common with every application in a capabilities exchange (§5.3).
RELAY_APPLICATION = 0xFFFFFFFF


class ResultCode(enum.IntEnum):
    """Result-Code values (§7.1). 3xxx are protocol errors answered with the E bit (§7.1.3)."""

    DIAMETER_MULTI_ROUND_AUTH = 1001
    DIAMETER_SUCCESS = 2001
    DIAMETER_LIMITED_SUCCESS = 2002
    DIAMETER_COMMAND_UNSUPPORTED = 3001
    DIAMETER_UNABLE_TO_DELIVER = 3002
    DIAMETER_REALM_NOT_SERVED = 3003
    DIAMETER_TOO_BUSY = 3004
    DIAMETER_LOOP_DETECTED = 3005
    DIAMETER_REDIRECT_INDICATION = 3006
    DIAMETER_APPLICATION_UNSUPPORTED = 3007
    DIAMETER_INVALID_HDR_BITS = 3008
    DIAMETER_INVALID_AVP_BITS = 3009
    DIAMETER_UNKNOWN_PEER = 3010
    DIAMETER_AUTHENTICATION_REJECTED = 4001
    DIAMETER_OUT_OF_SPACE = 4002
    ELECTION_LOST = 4003
    DIAMETER_AVP_UNSUPPORTED = 5001
    DIAMETER_UNKNOWN_SESSION_ID = 5002
    DIAMETER_AUTHORIZATION_REJECTED = 5003
    DIAMETER_INVALID_AVP_VALUE = 5004
    DIAMETER_MISSING_AVP = 5005
    DIAMETER_RESOURCES_EXCEEDED = 5006
    DIAMETER_CONTRADICTING_AVPS = 5007
    DIAMETER_AVP_NOT_ALLOWED = 5008
    DIAMETER_AVP_OCCURS_TOO_MANY_TIMES = 5009
    DIAMETER_NO_COMMON_APPLICATION = 5010
    DIAMETER_UNSUPPORTED_VERSION = 5011
    DIAMETER_UNABLE_TO_COMPLY = 5012
    DIAMETER_INVALID_BIT_IN_HEADER = 5013
    DIAMETER_INVALID_AVP_LENGTH = 5014
    DIAMETER_INVALID_MESSAGE_LENGTH = 5015
    DIAMETER_INVALID_AVP_BIT_COMBO = 5016
    DIAMETER_NO_COMMON_SECURITY = 5017


class DisconnectCause(enum.IntEnum):
    """Disconnect-Cause (§5.4.3)."""

    REBOOTING = 0
    BUSY = 1
    DO_NOT_WANT_TO_TALK_TO_YOU = 2


class AuthSessionState(enum.IntEnum):
    """Auth-Session-State (§8.11)."""

    STATE_MAINTAINED = 0
    NO_STATE_MAINTAINED = 1


def _names(e: type[enum.IntEnum]) -> dict[int, str]:
    return {m.value: m.name for m in e}


_U32 = AvpType.UNSIGNED32
_ID = AvpType.DIAMETER_IDENTITY

# --- §4.5 AVP table (flag rules: M must, V must not, unless noted) ---------------------------------
USER_NAME = AvpDef(1, "User-Name", AvpType.UTF8_STRING)  # §8.14
HOST_IP_ADDRESS = AvpDef(257, "Host-IP-Address", AvpType.ADDRESS)  # §5.3.5
AUTH_APPLICATION_ID = AvpDef(258, "Auth-Application-Id", _U32)  # §6.8
ACCT_APPLICATION_ID = AvpDef(259, "Acct-Application-Id", _U32)  # §6.9
VENDOR_ID = AvpDef(266, "Vendor-Id", _U32)  # §5.3.3
VENDOR_SPECIFIC_APPLICATION_ID = AvpDef(  # §6.11: {Vendor-Id} and exactly one of Auth/Acct
    260, "Vendor-Specific-Application-Id", AvpType.GROUPED,
    grammar=Grammar(
        (required(VENDOR_ID), optional(AUTH_APPLICATION_ID), optional(ACCT_APPLICATION_ID)),
        extensible=False,
    ),
)
SESSION_ID = AvpDef(263, "Session-Id", AvpType.UTF8_STRING)  # §8.8
ORIGIN_HOST = AvpDef(264, "Origin-Host", _ID)  # §6.3
SUPPORTED_VENDOR_ID = AvpDef(265, "Supported-Vendor-Id", _U32)  # §5.3.6
FIRMWARE_REVISION = AvpDef(267, "Firmware-Revision", _U32, m=Flag.MUST_NOT)  # §5.3.4
RESULT_CODE = AvpDef(268, "Result-Code", _U32)  # §7.1
PRODUCT_NAME = AvpDef(269, "Product-Name", AvpType.UTF8_STRING, m=Flag.MUST_NOT)  # §5.3.7
DISCONNECT_CAUSE = AvpDef(273, "Disconnect-Cause", AvpType.ENUMERATED, enum_values=_names(DisconnectCause))
AUTH_SESSION_STATE = AvpDef(  # §8.11
    277, "Auth-Session-State", AvpType.ENUMERATED, enum_values=_names(AuthSessionState)
)
ORIGIN_STATE_ID = AvpDef(278, "Origin-State-Id", _U32)  # §8.16
ERROR_MESSAGE = AvpDef(281, "Error-Message", AvpType.UTF8_STRING, m=Flag.MUST_NOT)  # §7.3
ROUTE_RECORD = AvpDef(282, "Route-Record", _ID)  # §6.7.1
DESTINATION_REALM = AvpDef(283, "Destination-Realm", _ID)  # §6.6
PROXY_HOST = AvpDef(280, "Proxy-Host", _ID)  # §6.7.3
PROXY_STATE = AvpDef(33, "Proxy-State", AvpType.OCTET_STRING)  # §6.7.4
PROXY_INFO = AvpDef(  # §6.7.2
    284, "Proxy-Info", AvpType.GROUPED,
    grammar=Grammar((required(PROXY_HOST), required(PROXY_STATE))),
)
DESTINATION_HOST = AvpDef(293, "Destination-Host", _ID)  # §6.5
ERROR_REPORTING_HOST = AvpDef(294, "Error-Reporting-Host", _ID, m=Flag.MUST_NOT)  # §7.4
ORIGIN_REALM = AvpDef(296, "Origin-Realm", _ID)  # §6.4
EXPERIMENTAL_RESULT_CODE = AvpDef(298, "Experimental-Result-Code", _U32)  # §7.7
EXPERIMENTAL_RESULT = AvpDef(  # §7.6
    297, "Experimental-Result", AvpType.GROUPED,
    grammar=Grammar((required(VENDOR_ID), required(EXPERIMENTAL_RESULT_CODE)), extensible=False),
)
INBAND_SECURITY_ID = AvpDef(299, "Inband-Security-Id", _U32)  # §6.10
DRMP = AvpDef(301, "DRMP", AvpType.ENUMERATED, enum_values={i: f"PRIORITY_{i}" for i in range(16)})  # RFC 7944
FAILED_AVP = AvpDef(279, "Failed-AVP", AvpType.GROUPED, grammar=Grammar((), extensible=True))  # §7.5

AVPS = (
    USER_NAME, HOST_IP_ADDRESS, AUTH_APPLICATION_ID, ACCT_APPLICATION_ID, VENDOR_SPECIFIC_APPLICATION_ID,
    SESSION_ID, ORIGIN_HOST, SUPPORTED_VENDOR_ID, VENDOR_ID, FIRMWARE_REVISION, RESULT_CODE, PRODUCT_NAME,
    DISCONNECT_CAUSE, AUTH_SESSION_STATE, ORIGIN_STATE_ID, FAILED_AVP, ERROR_MESSAGE, ROUTE_RECORD,
    DESTINATION_REALM, PROXY_INFO, PROXY_HOST, PROXY_STATE, DESTINATION_HOST, ERROR_REPORTING_HOST,
    ORIGIN_REALM, EXPERIMENTAL_RESULT, EXPERIMENTAL_RESULT_CODE, INBAND_SECURITY_ID, DRMP,
)

# --- §5.3.1 / §5.3.2 Capabilities-Exchange ----------------------------------------------------------
_CAPABILITIES = (
    required(ORIGIN_HOST),
    required(ORIGIN_REALM),
    required(HOST_IP_ADDRESS, max=None),
    required(VENDOR_ID),
    required(PRODUCT_NAME),
    optional(ORIGIN_STATE_ID),
    many(SUPPORTED_VENDOR_ID),
    many(AUTH_APPLICATION_ID),
    many(INBAND_SECURITY_ID),
    many(ACCT_APPLICATION_ID),
    many(VENDOR_SPECIFIC_APPLICATION_ID),
    optional(FIRMWARE_REVISION),
)
CER = CommandDef(
    257, "Capabilities-Exchange", COMMON_MESSAGES_APPLICATION,
    request=Grammar(_CAPABILITIES),
    answer=Grammar((required(RESULT_CODE), *_CAPABILITIES, optional(ERROR_MESSAGE), optional(FAILED_AVP))),
    proxiable=False, abbreviation=("CER", "CEA"),
)
CEA_GRAMMAR = CER.answer

# --- §5.5.1 / §5.5.2 Device-Watchdog ----------------------------------------------------------------
DWR = CommandDef(
    280, "Device-Watchdog", COMMON_MESSAGES_APPLICATION,
    request=Grammar((required(ORIGIN_HOST), required(ORIGIN_REALM), optional(ORIGIN_STATE_ID))),
    answer=Grammar((
        required(RESULT_CODE), required(ORIGIN_HOST), required(ORIGIN_REALM),
        optional(ERROR_MESSAGE), optional(FAILED_AVP), optional(ORIGIN_STATE_ID),
    )),
    proxiable=False, abbreviation=("DWR", "DWA"),
)

# --- §5.4.1 / §5.4.2 Disconnect-Peer ----------------------------------------------------------------
DPR = CommandDef(
    282, "Disconnect-Peer", COMMON_MESSAGES_APPLICATION,
    request=Grammar((required(ORIGIN_HOST), required(ORIGIN_REALM), required(DISCONNECT_CAUSE))),
    answer=Grammar((
        required(RESULT_CODE), required(ORIGIN_HOST), required(ORIGIN_REALM),
        optional(ERROR_MESSAGE), optional(FAILED_AVP),
    )),
    proxiable=False, abbreviation=("DPR", "DPA"),
)

# --- §7.2 the generic answer-message used for protocol errors (E bit) -------------------------------
ANSWER_MESSAGE = Grammar((
    optional(SESSION_ID),
    required(ORIGIN_HOST),
    required(ORIGIN_REALM),
    required(RESULT_CODE),
    optional(ORIGIN_STATE_ID),
    optional(ERROR_MESSAGE),
    optional(ERROR_REPORTING_HOST),
    optional(FAILED_AVP),
    optional(EXPERIMENTAL_RESULT),
    many(PROXY_INFO),
))

COMMANDS = (CER, DWR, DPR)
