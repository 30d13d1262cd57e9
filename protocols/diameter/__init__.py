"""Sans-I/O Diameter (RFC 6733): codec, dictionaries as data, validation, peer state machine."""

from .answers import LocalNode, error_answer, make_answer
from .dictionary import AvpDef, AvpType, CommandDef, Dictionary, Flag, Grammar, Rule
from .errors import DiameterError, EncodeError, FramingError, ProtocolError, StateError
from .framer import Framer
from .message import Avp, Header, Message, decode_message, encode_avp, encode_message
from .validate import Validator

__all__ = [
    "Avp",
    "AvpDef",
    "AvpType",
    "CommandDef",
    "DiameterError",
    "Dictionary",
    "EncodeError",
    "Flag",
    "Framer",
    "FramingError",
    "Grammar",
    "Header",
    "LocalNode",
    "Message",
    "ProtocolError",
    "Rule",
    "StateError",
    "Validator",
    "decode_message",
    "encode_avp",
    "encode_message",
    "error_answer",
    "make_answer",
]
