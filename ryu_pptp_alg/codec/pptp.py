"""RFC 2637 section 2: PPTP control-connection messages.

Every message is a fixed-length structure: a 12-byte common header (Length,
PPTP Message Type, Magic Cookie, Control Message Type, Reserved0) followed by a
type-specific body.  ``parse`` accepts exactly one complete message and
``build`` is its inverse: ``parse(build(m)) == m`` and ``build(parse(b)) == b``.

Fixed-length string fields are ``bytes`` with trailing NULs stripped; ``build``
pads them with NULs again.  Reserved fields are not exposed; parse insists they
are zero and build writes zeros.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, fields
from enum import IntEnum
from typing import ClassVar, Final, TypeAlias

from .errors import (
    BadLength,
    BadMagicCookie,
    BadReservedField,
    FieldOutOfRange,
    NotControlMessage,
    PptpError,
    TruncatedMessage,
    UnknownMessageType,
)

__all__ = [
    "CALL_ID_OFFSETS",
    "CONTROL_MESSAGE",
    "HEADER_LEN",
    "MAGIC_COOKIE",
    "MAX_MESSAGE_LEN",
    "MESSAGE_CLASSES",
    "MIN_MESSAGE_LEN",
    "PPTP_PORT",
    "REPLY_RESULT_OFFSETS",
    "BadLength",
    "BadMagicCookie",
    "BadReservedField",
    "BearerType",
    "CallClearRequest",
    "CallDisconnectNotify",
    "CallDisconnectResult",
    "ControlMessageType",
    "EchoReply",
    "EchoRequest",
    "EchoResult",
    "FieldOutOfRange",
    "FramingType",
    "GeneralErrorCode",
    "IncomingCallConnected",
    "IncomingCallReply",
    "IncomingCallRequest",
    "IncomingCallResult",
    "Message",
    "NotControlMessage",
    "OutgoingCallReply",
    "OutgoingCallRequest",
    "OutgoingCallResult",
    "PptpError",
    "SetLinkInfo",
    "StartControlConnectionReply",
    "StartControlConnectionRequest",
    "StartControlConnectionResult",
    "StopControlConnectionReason",
    "StopControlConnectionReply",
    "StopControlConnectionRequest",
    "StopControlConnectionResult",
    "TruncatedMessage",
    "UnknownMessageType",
    "WanErrorNotify",
    "build",
    "message_length",
    "message_name",
    "parse",
    "peek_type",
]

PPTP_PORT: Final = 1723
MAGIC_COOKIE: Final = 0x1A2B3C4D
CONTROL_MESSAGE: Final = 1  # PPTP Message Type of every control message
HEADER_LEN: Final = 12

# Length, PPTP Message Type, Magic Cookie, Control Message Type, Reserved0.
_HEADER = struct.Struct("!HHIHH")


class ControlMessageType(IntEnum):
    START_CONTROL_CONNECTION_REQUEST = 1
    START_CONTROL_CONNECTION_REPLY = 2
    STOP_CONTROL_CONNECTION_REQUEST = 3
    STOP_CONTROL_CONNECTION_REPLY = 4
    ECHO_REQUEST = 5
    ECHO_REPLY = 6
    OUTGOING_CALL_REQUEST = 7
    OUTGOING_CALL_REPLY = 8
    INCOMING_CALL_REQUEST = 9
    INCOMING_CALL_REPLY = 10
    INCOMING_CALL_CONNECTED = 11
    CALL_CLEAR_REQUEST = 12
    CALL_DISCONNECT_NOTIFY = 13
    WAN_ERROR_NOTIFY = 14
    SET_LINK_INFO = 15


# Code tables (RFC 2637 section 2).  Dataclass fields stay plain ints so that
# codes outside these tables still round-trip.


class GeneralErrorCode(IntEnum):
    NONE = 0
    NOT_CONNECTED = 1
    BAD_FORMAT = 2
    BAD_VALUE = 3
    NO_RESOURCE = 4
    BAD_CALL_ID = 5
    PAC_ERROR = 6


class StartControlConnectionResult(IntEnum):
    OK = 1
    GENERAL_ERROR = 2
    COMMAND_CHANNEL_EXISTS = 3
    NOT_AUTHORIZED = 4
    UNSUPPORTED_PROTOCOL_VERSION = 5


class StopControlConnectionReason(IntEnum):
    NONE = 1
    STOP_PROTOCOL = 2
    STOP_LOCAL_SHUTDOWN = 3


class StopControlConnectionResult(IntEnum):
    OK = 1
    GENERAL_ERROR = 2


class EchoResult(IntEnum):
    OK = 1
    GENERAL_ERROR = 2


class OutgoingCallResult(IntEnum):
    CONNECTED = 1
    GENERAL_ERROR = 2
    NO_CARRIER = 3
    BUSY = 4
    NO_DIAL_TONE = 5
    TIME_OUT = 6
    DO_NOT_ACCEPT = 7


class IncomingCallResult(IntEnum):
    CONNECT = 1
    GENERAL_ERROR = 2
    DO_NOT_ACCEPT = 3


class CallDisconnectResult(IntEnum):
    LOST_CARRIER = 1
    GENERAL_ERROR = 2
    ADMIN_SHUTDOWN = 3
    REQUEST = 4


class BearerType(IntEnum):
    ANALOG = 1
    DIGITAL = 2
    ANY = 3


class FramingType(IntEnum):
    ASYNCHRONOUS = 1
    SYNCHRONOUS = 2
    ANY = 3


# Body layouts: (field name, wire code) in RFC order.  Codes: "B"/"H"/"I" are
# 8/16/32-bit unsigned big-endian ints; an int N is an N-byte NUL-padded string.
# Names starting with "reserved" are reserved fields (must be zero, not exposed).
_Layout: TypeAlias = tuple[tuple[str, str | int], ...]

_INT_BITS: Final = {"B": 8, "H": 16, "I": 32}


@dataclass(frozen=True)
class StartControlConnectionRequest:
    TYPE: ClassVar[ControlMessageType] = ControlMessageType.START_CONTROL_CONNECTION_REQUEST
    LENGTH: ClassVar[int] = 156
    CALL_ID_FIELDS: ClassVar[tuple[str, ...]] = ()
    _LAYOUT: ClassVar[_Layout] = (
        ("protocol_version", "H"),
        ("reserved1", "H"),
        ("framing_capabilities", "I"),
        ("bearer_capabilities", "I"),
        ("maximum_channels", "H"),
        ("firmware_revision", "H"),
        ("host_name", 64),
        ("vendor_string", 64),
    )
    protocol_version: int = 0x0100
    framing_capabilities: int = 0
    bearer_capabilities: int = 0
    maximum_channels: int = 0
    firmware_revision: int = 0
    host_name: bytes = b""
    vendor_string: bytes = b""


@dataclass(frozen=True)
class StartControlConnectionReply:
    TYPE: ClassVar[ControlMessageType] = ControlMessageType.START_CONTROL_CONNECTION_REPLY
    LENGTH: ClassVar[int] = 156
    CALL_ID_FIELDS: ClassVar[tuple[str, ...]] = ()
    _LAYOUT: ClassVar[_Layout] = (
        ("protocol_version", "H"),
        ("result_code", "B"),
        ("error_code", "B"),
        ("framing_capabilities", "I"),
        ("bearer_capabilities", "I"),
        ("maximum_channels", "H"),
        ("firmware_revision", "H"),
        ("host_name", 64),
        ("vendor_string", 64),
    )
    protocol_version: int = 0x0100
    result_code: int = StartControlConnectionResult.OK
    error_code: int = GeneralErrorCode.NONE
    framing_capabilities: int = 0
    bearer_capabilities: int = 0
    maximum_channels: int = 0
    firmware_revision: int = 0
    host_name: bytes = b""
    vendor_string: bytes = b""


@dataclass(frozen=True)
class StopControlConnectionRequest:
    TYPE: ClassVar[ControlMessageType] = ControlMessageType.STOP_CONTROL_CONNECTION_REQUEST
    LENGTH: ClassVar[int] = 16
    CALL_ID_FIELDS: ClassVar[tuple[str, ...]] = ()
    _LAYOUT: ClassVar[_Layout] = (("reason", "B"), ("reserved1", "B"), ("reserved2", "H"))
    reason: int = StopControlConnectionReason.NONE


@dataclass(frozen=True)
class StopControlConnectionReply:
    TYPE: ClassVar[ControlMessageType] = ControlMessageType.STOP_CONTROL_CONNECTION_REPLY
    LENGTH: ClassVar[int] = 16
    CALL_ID_FIELDS: ClassVar[tuple[str, ...]] = ()
    _LAYOUT: ClassVar[_Layout] = (("result_code", "B"), ("error_code", "B"), ("reserved1", "H"))
    result_code: int = StopControlConnectionResult.OK
    error_code: int = GeneralErrorCode.NONE


@dataclass(frozen=True)
class EchoRequest:
    TYPE: ClassVar[ControlMessageType] = ControlMessageType.ECHO_REQUEST
    LENGTH: ClassVar[int] = 16
    CALL_ID_FIELDS: ClassVar[tuple[str, ...]] = ()
    _LAYOUT: ClassVar[_Layout] = (("identifier", "I"),)
    identifier: int = 0


@dataclass(frozen=True)
class EchoReply:
    TYPE: ClassVar[ControlMessageType] = ControlMessageType.ECHO_REPLY
    LENGTH: ClassVar[int] = 20
    CALL_ID_FIELDS: ClassVar[tuple[str, ...]] = ()
    _LAYOUT: ClassVar[_Layout] = (
        ("identifier", "I"),
        ("result_code", "B"),
        ("error_code", "B"),
        ("reserved1", "H"),
    )
    identifier: int = 0
    result_code: int = EchoResult.OK
    error_code: int = GeneralErrorCode.NONE


@dataclass(frozen=True)
class OutgoingCallRequest:
    TYPE: ClassVar[ControlMessageType] = ControlMessageType.OUTGOING_CALL_REQUEST
    LENGTH: ClassVar[int] = 168
    CALL_ID_FIELDS: ClassVar[tuple[str, ...]] = ("call_id",)
    _LAYOUT: ClassVar[_Layout] = (
        ("call_id", "H"),
        ("call_serial_number", "H"),
        ("minimum_bps", "I"),
        ("maximum_bps", "I"),
        ("bearer_type", "I"),
        ("framing_type", "I"),
        ("packet_receive_window_size", "H"),
        ("packet_processing_delay", "H"),
        ("phone_number_length", "H"),
        ("reserved1", "H"),
        ("phone_number", 64),
        ("subaddress", 64),
    )
    call_id: int = 0
    call_serial_number: int = 0
    minimum_bps: int = 0
    maximum_bps: int = 0
    bearer_type: int = BearerType.ANY
    framing_type: int = FramingType.ANY
    packet_receive_window_size: int = 0
    packet_processing_delay: int = 0
    phone_number_length: int = 0
    phone_number: bytes = b""
    subaddress: bytes = b""


@dataclass(frozen=True)
class OutgoingCallReply:
    TYPE: ClassVar[ControlMessageType] = ControlMessageType.OUTGOING_CALL_REPLY
    LENGTH: ClassVar[int] = 32
    CALL_ID_FIELDS: ClassVar[tuple[str, ...]] = ("call_id", "peer_call_id")
    _LAYOUT: ClassVar[_Layout] = (
        ("call_id", "H"),
        ("peer_call_id", "H"),
        ("result_code", "B"),
        ("error_code", "B"),
        ("cause_code", "H"),
        ("connect_speed", "I"),
        ("packet_receive_window_size", "H"),
        ("packet_processing_delay", "H"),
        ("physical_channel_id", "I"),
    )
    call_id: int = 0
    peer_call_id: int = 0
    result_code: int = OutgoingCallResult.CONNECTED
    error_code: int = GeneralErrorCode.NONE
    cause_code: int = 0
    connect_speed: int = 0
    packet_receive_window_size: int = 0
    packet_processing_delay: int = 0
    physical_channel_id: int = 0


@dataclass(frozen=True)
class IncomingCallRequest:
    TYPE: ClassVar[ControlMessageType] = ControlMessageType.INCOMING_CALL_REQUEST
    LENGTH: ClassVar[int] = 220
    CALL_ID_FIELDS: ClassVar[tuple[str, ...]] = ("call_id",)
    _LAYOUT: ClassVar[_Layout] = (
        ("call_id", "H"),
        ("call_serial_number", "H"),
        ("call_bearer_type", "I"),
        ("physical_channel_id", "I"),
        ("dialed_number_length", "H"),
        ("dialing_number_length", "H"),
        ("dialed_number", 64),
        ("dialing_number", 64),
        ("subaddress", 64),
    )
    call_id: int = 0
    call_serial_number: int = 0
    call_bearer_type: int = BearerType.ANY
    physical_channel_id: int = 0
    dialed_number_length: int = 0
    dialing_number_length: int = 0
    dialed_number: bytes = b""
    dialing_number: bytes = b""
    subaddress: bytes = b""


@dataclass(frozen=True)
class IncomingCallReply:
    TYPE: ClassVar[ControlMessageType] = ControlMessageType.INCOMING_CALL_REPLY
    LENGTH: ClassVar[int] = 24
    CALL_ID_FIELDS: ClassVar[tuple[str, ...]] = ("call_id", "peer_call_id")
    _LAYOUT: ClassVar[_Layout] = (
        ("call_id", "H"),
        ("peer_call_id", "H"),
        ("result_code", "B"),
        ("error_code", "B"),
        ("packet_receive_window_size", "H"),
        ("packet_transmit_delay", "H"),
        ("reserved1", "H"),
    )
    call_id: int = 0
    peer_call_id: int = 0
    result_code: int = IncomingCallResult.CONNECT
    error_code: int = GeneralErrorCode.NONE
    packet_receive_window_size: int = 0
    packet_transmit_delay: int = 0


@dataclass(frozen=True)
class IncomingCallConnected:
    TYPE: ClassVar[ControlMessageType] = ControlMessageType.INCOMING_CALL_CONNECTED
    LENGTH: ClassVar[int] = 28
    CALL_ID_FIELDS: ClassVar[tuple[str, ...]] = ("peer_call_id",)
    _LAYOUT: ClassVar[_Layout] = (
        ("peer_call_id", "H"),
        ("reserved1", "H"),
        ("connect_speed", "I"),
        ("packet_receive_window_size", "H"),
        ("packet_transmit_delay", "H"),
        ("framing_type", "I"),
    )
    peer_call_id: int = 0
    connect_speed: int = 0
    packet_receive_window_size: int = 0
    packet_transmit_delay: int = 0
    framing_type: int = FramingType.ANY


@dataclass(frozen=True)
class CallClearRequest:
    TYPE: ClassVar[ControlMessageType] = ControlMessageType.CALL_CLEAR_REQUEST
    LENGTH: ClassVar[int] = 16
    CALL_ID_FIELDS: ClassVar[tuple[str, ...]] = ("call_id",)
    _LAYOUT: ClassVar[_Layout] = (("call_id", "H"), ("reserved1", "H"))
    call_id: int = 0


@dataclass(frozen=True)
class CallDisconnectNotify:
    TYPE: ClassVar[ControlMessageType] = ControlMessageType.CALL_DISCONNECT_NOTIFY
    LENGTH: ClassVar[int] = 148
    CALL_ID_FIELDS: ClassVar[tuple[str, ...]] = ("call_id",)
    _LAYOUT: ClassVar[_Layout] = (
        ("call_id", "H"),
        ("result_code", "B"),
        ("error_code", "B"),
        ("cause_code", "H"),
        ("reserved1", "H"),
        ("call_statistics", 128),
    )
    call_id: int = 0
    result_code: int = CallDisconnectResult.REQUEST
    error_code: int = GeneralErrorCode.NONE
    cause_code: int = 0
    call_statistics: bytes = b""


@dataclass(frozen=True)
class WanErrorNotify:
    TYPE: ClassVar[ControlMessageType] = ControlMessageType.WAN_ERROR_NOTIFY
    LENGTH: ClassVar[int] = 40
    CALL_ID_FIELDS: ClassVar[tuple[str, ...]] = ("peer_call_id",)
    _LAYOUT: ClassVar[_Layout] = (
        ("peer_call_id", "H"),
        ("reserved1", "H"),
        ("crc_errors", "I"),
        ("framing_errors", "I"),
        ("hardware_overruns", "I"),
        ("buffer_overruns", "I"),
        ("timeout_errors", "I"),
        ("alignment_errors", "I"),
    )
    peer_call_id: int = 0
    crc_errors: int = 0
    framing_errors: int = 0
    hardware_overruns: int = 0
    buffer_overruns: int = 0
    timeout_errors: int = 0
    alignment_errors: int = 0


@dataclass(frozen=True)
class SetLinkInfo:
    TYPE: ClassVar[ControlMessageType] = ControlMessageType.SET_LINK_INFO
    LENGTH: ClassVar[int] = 24
    CALL_ID_FIELDS: ClassVar[tuple[str, ...]] = ("peer_call_id",)
    _LAYOUT: ClassVar[_Layout] = (
        ("peer_call_id", "H"),
        ("reserved1", "H"),
        ("send_accm", "I"),
        ("receive_accm", "I"),
    )
    peer_call_id: int = 0
    send_accm: int = 0
    receive_accm: int = 0


Message: TypeAlias = (
    StartControlConnectionRequest
    | StartControlConnectionReply
    | StopControlConnectionRequest
    | StopControlConnectionReply
    | EchoRequest
    | EchoReply
    | OutgoingCallRequest
    | OutgoingCallReply
    | IncomingCallRequest
    | IncomingCallReply
    | IncomingCallConnected
    | CallClearRequest
    | CallDisconnectNotify
    | WanErrorNotify
    | SetLinkInfo
)

MESSAGE_CLASSES: Final[dict[ControlMessageType, type[Message]]] = {
    cls.TYPE: cls
    for cls in (
        StartControlConnectionRequest,
        StartControlConnectionReply,
        StopControlConnectionRequest,
        StopControlConnectionReply,
        EchoRequest,
        EchoReply,
        OutgoingCallRequest,
        OutgoingCallReply,
        IncomingCallRequest,
        IncomingCallReply,
        IncomingCallConnected,
        CallClearRequest,
        CallDisconnectNotify,
        WanErrorNotify,
        SetLinkInfo,
    )
}

MAX_MESSAGE_LEN: Final = max(cls.LENGTH for cls in MESSAGE_CLASSES.values())  # 220
MIN_MESSAGE_LEN: Final = min(cls.LENGTH for cls in MESSAGE_CLASSES.values())  # 16


def _compile(cls: type[Message]) -> tuple[struct.Struct, tuple[str, ...]]:
    """Body struct and the wire-order field names (reserved ones included)."""
    codes = "".join(f"{code}s" if isinstance(code, int) else code for _, code in cls._LAYOUT)
    body = struct.Struct("!" + codes)
    names = tuple(name for name, _ in cls._LAYOUT)
    exposed = tuple(n for n in names if not n.startswith("reserved"))
    # Guard against layout/dataclass drift: same exposed fields, same order.
    if exposed != tuple(f.name for f in fields(cls)) or HEADER_LEN + body.size != cls.LENGTH:
        raise AssertionError(f"layout of {cls.__name__} disagrees with its fields")
    return body, names


_BODIES: Final = {cls: _compile(cls) for cls in MESSAGE_CLASSES.values()}


def _parse_plan(cls: type[Message]) -> tuple[tuple[tuple[int, str], ...],
                                              tuple[tuple[int, bool, str], ...]]:
    """Where the reserved fields are in the unpacked body, and which exposed fields are
    padded strings: worked out once per message class."""
    names = _BODIES[cls][1]
    codes = [code for _, code in cls._LAYOUT]
    reserved = tuple((i, n) for i, n in enumerate(names) if n.startswith("reserved"))
    exposed = tuple((i, isinstance(codes[i], int), n) for i, n in enumerate(names)
                    if not n.startswith("reserved"))
    return reserved, exposed


_PARSE_PLANS: Final = {cls: _parse_plan(cls) for cls in MESSAGE_CLASSES.values()}


def _field_offset(cls: type[Message], name: str) -> int:
    """Byte offset of field ``name`` from the start of the message."""
    codes = ""
    for field_name, code in cls._LAYOUT:
        if field_name == name:
            return HEADER_LEN + struct.calcsize("!" + codes)
        codes += f"{code}s" if isinstance(code, int) else code
    raise KeyError(name)


# Where each call-ID field sits in its message: {type: ((field, offset), ...)}.
CALL_ID_OFFSETS: Final[dict[ControlMessageType, tuple[tuple[str, int], ...]]] = {
    t: tuple((name, _field_offset(cls, name)) for name in cls.CALL_ID_FIELDS)
    for t, cls in MESSAGE_CLASSES.items() if cls.CALL_ID_FIELDS
}


# A call reply's result and error codes, as one two-byte field (result << 8 | error): a
# NAT that cannot carry a call answers for it by rewriting them in place.
REPLY_RESULT_OFFSETS: Final[dict[ControlMessageType, tuple[tuple[str, int], ...]]] = {
    ControlMessageType.OUTGOING_CALL_REPLY: (
        ("result_code", _field_offset(OutgoingCallReply, "result_code")),)}


def message_name(message_type: int) -> str:
    """RFC spelling of a control message type, e.g. 'Outgoing-Call-Request'."""
    name = _MESSAGE_NAMES.get(message_type)
    return name if name is not None else f"control message type {message_type}"


_MESSAGE_NAMES: Final[dict[int, str]] = {
    t: t.name.title().replace("_", "-").replace("Wan-", "WAN-") for t in ControlMessageType}


def message_length(header: bytes) -> int:
    """The Length field (first two bytes) of a message or stream prefix."""
    if len(header) < 2:
        raise TruncatedMessage(f"need 2 bytes for the length field, got {len(header)}")
    return int.from_bytes(header[:2], "big")


def _check_header(data: bytes) -> tuple[int, type[Message]]:
    """Validate the common header's type fields; return (Length field, class)."""
    if len(data) < HEADER_LEN:
        raise TruncatedMessage(f"need {HEADER_LEN} header bytes, got {len(data)}")
    length, pptp_type, cookie, control_type, reserved0 = _HEADER.unpack_from(data)
    if pptp_type != CONTROL_MESSAGE:
        raise NotControlMessage(f"PPTP message type {pptp_type}, expected {CONTROL_MESSAGE}")
    if cookie != MAGIC_COOKIE:
        raise BadMagicCookie(f"magic cookie {cookie:#010x}, expected {MAGIC_COOKIE:#010x}")
    cls = MESSAGE_CLASSES.get(control_type)  # an int finds its IntEnum key
    if cls is None:
        raise UnknownMessageType(f"unknown control message type {control_type}")
    if reserved0:
        raise BadReservedField(f"{message_name(cls.TYPE)}: reserved0 is {reserved0:#06x}")
    return length, cls


def peek_type(data: bytes) -> ControlMessageType:
    """Control Message Type of a message from its 12-byte header.

    Validates the PPTP message type, magic cookie and Reserved0, not the length.
    """
    return _check_header(bytes(data))[1].TYPE


def parse(data: bytes) -> Message:
    """Decode exactly one complete control message."""
    data = bytes(data)
    length, cls = _check_header(data)
    name = message_name(cls.TYPE)
    if length != cls.LENGTH:
        raise BadLength(f"{name}: length {length}, expected {cls.LENGTH}")
    if len(data) < length:
        raise TruncatedMessage(f"{name}: {len(data)} bytes, expected {length}")
    if len(data) > length:
        raise BadLength(f"{name}: {len(data) - length} bytes after the {length}-byte message")
    values = _BODIES[cls][0].unpack_from(data, HEADER_LEN)
    reserved, exposed = _PARSE_PLANS[cls]
    for i, field_name in reserved:
        if values[i]:
            raise BadReservedField(f"{name}: {field_name} is nonzero ({values[i]!r})")
    # What cls(...) makes, without the frozen dataclass's field-by-field __setattr__ (the
    # values are the fields, all of them, and the classes have no __post_init__).
    msg = object.__new__(cls)
    msg.__dict__.update({field_name: values[i].rstrip(b"\x00") if padded else values[i]
                         for i, padded, field_name in exposed})
    return msg


def build(msg: Message) -> bytes:
    """Encode a control message; raises FieldOutOfRange for unencodable values."""
    cls = type(msg)
    if MESSAGE_CLASSES.get(getattr(cls, "TYPE", None)) is not cls:  # type: ignore[arg-type]
        raise TypeError(f"not a PPTP control message: {msg!r}")
    name = message_name(cls.TYPE)
    body, _ = _BODIES[cls]
    wire_values: list[int | bytes] = []
    for field_name, code in cls._LAYOUT:
        if field_name.startswith("reserved"):
            wire_values.append(b"" if isinstance(code, int) else 0)
            continue
        value = getattr(msg, field_name)
        where = f"{name}.{field_name}"
        if isinstance(code, int):
            if not isinstance(value, bytes | bytearray):
                raise FieldOutOfRange(f"{where}: expected bytes, got {type(value).__name__}")
            if len(value) > code:
                raise FieldOutOfRange(f"{where}: {len(value)} bytes, at most {code} allowed")
            if value.endswith(b"\x00"):
                # Would not survive parse(), which strips trailing NUL padding.
                raise FieldOutOfRange(f"{where}: trailing NUL bytes are padding, strip them")
            wire_values.append(bytes(value))
        else:
            bits = _INT_BITS[code]
            if not isinstance(value, int) or isinstance(value, bool):
                raise FieldOutOfRange(f"{where}: expected int, got {type(value).__name__}")
            if not 0 <= value < 1 << bits:
                raise FieldOutOfRange(f"{where}: {value} out of range 0..{(1 << bits) - 1}")
            wire_values.append(value)
    header = _HEADER.pack(cls.LENGTH, CONTROL_MESSAGE, MAGIC_COOKIE, cls.TYPE, 0)
    return header + body.pack(*wire_values)
