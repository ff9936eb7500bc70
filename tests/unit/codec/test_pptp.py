"""RFC 2637 control-message codec: layouts, round trips, and a corpus of bad input."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ryu_pptp_alg.codec import pptp
from ryu_pptp_alg.codec.errors import (
    BadLength,
    BadMagicCookie,
    BadReservedField,
    FieldOutOfRange,
    NotControlMessage,
    PptpError,
    TruncatedMessage,
    UnknownMessageType,
)

from .strategies import (
    ALL_CLASSES,
    RFC_FIELDS,
    any_message,
    distinct_message,
    field_names,
    max_message,
)

T = pptp.ControlMessageType

# RFC 2637 section 2: (type, fixed length, call-id fields) per message.
EXPECTED = {
    pptp.StartControlConnectionRequest: (T.START_CONTROL_CONNECTION_REQUEST, 156, ()),
    pptp.StartControlConnectionReply: (T.START_CONTROL_CONNECTION_REPLY, 156, ()),
    pptp.StopControlConnectionRequest: (T.STOP_CONTROL_CONNECTION_REQUEST, 16, ()),
    pptp.StopControlConnectionReply: (T.STOP_CONTROL_CONNECTION_REPLY, 16, ()),
    pptp.EchoRequest: (T.ECHO_REQUEST, 16, ()),
    pptp.EchoReply: (T.ECHO_REPLY, 20, ()),
    pptp.OutgoingCallRequest: (T.OUTGOING_CALL_REQUEST, 168, ("call_id",)),
    pptp.OutgoingCallReply: (T.OUTGOING_CALL_REPLY, 32, ("call_id", "peer_call_id")),
    pptp.IncomingCallRequest: (T.INCOMING_CALL_REQUEST, 220, ("call_id",)),
    pptp.IncomingCallReply: (T.INCOMING_CALL_REPLY, 24, ("call_id", "peer_call_id")),
    pptp.IncomingCallConnected: (T.INCOMING_CALL_CONNECTED, 28, ("peer_call_id",)),
    pptp.CallClearRequest: (T.CALL_CLEAR_REQUEST, 16, ("call_id",)),
    pptp.CallDisconnectNotify: (T.CALL_DISCONNECT_NOTIFY, 148, ("call_id",)),
    pptp.WanErrorNotify: (T.WAN_ERROR_NOTIFY, 40, ("peer_call_id",)),
    pptp.SetLinkInfo: (T.SET_LINK_INFO, 24, ("peer_call_id",)),
}

# Byte ranges [start, end) of per-message reserved fields in the whole message
# (Reserved0 at 10..12 is common to all).
RESERVED_RANGES = {
    pptp.StartControlConnectionRequest: [(14, 16)],
    pptp.StartControlConnectionReply: [],
    pptp.StopControlConnectionRequest: [(13, 14), (14, 16)],
    pptp.StopControlConnectionReply: [(14, 16)],
    pptp.EchoRequest: [],
    pptp.EchoReply: [(18, 20)],
    pptp.OutgoingCallRequest: [(38, 40)],
    pptp.OutgoingCallReply: [],
    pptp.IncomingCallRequest: [],
    pptp.IncomingCallReply: [(22, 24)],
    pptp.IncomingCallConnected: [(14, 16)],
    pptp.CallClearRequest: [(14, 16)],
    pptp.CallDisconnectNotify: [(18, 20)],
    pptp.WanErrorNotify: [(14, 16)],
    pptp.SetLinkInfo: [(14, 16)],
}

ids = [cls.__name__ for cls in ALL_CLASSES]
each_class = pytest.mark.parametrize("cls", ALL_CLASSES, ids=ids)


def header(length: int, control_type: int, *, pptp_type: int = 1,
           cookie: int = 0x1A2B3C4D, reserved0: int = 0) -> bytes:
    return struct.pack("!HHIHH", length, pptp_type, cookie, control_type, reserved0)


def valid_bytes(cls: type, body: bytes) -> bytes:
    """Header + body with every reserved byte zeroed: a valid encoding."""
    data = bytearray(header(cls.LENGTH, cls.TYPE) + body)
    for start, end in RESERVED_RANGES[cls]:
        data[start:end] = bytes(end - start)
    return bytes(data)


# --- constants and class metadata -------------------------------------------


def test_constants() -> None:
    assert pptp.PPTP_PORT == 1723
    assert pptp.MAGIC_COOKIE == 0x1A2B3C4D
    assert pptp.CONTROL_MESSAGE == 1
    assert pptp.HEADER_LEN == 12
    assert pptp.MAX_MESSAGE_LEN == 220
    assert [int(t) for t in T] == list(range(1, 16))
    assert set(pptp.MESSAGE_CLASSES.values()) == set(EXPECTED)


@each_class
def test_class_metadata_matches_rfc(cls: type) -> None:
    actual = (cls.TYPE, cls.LENGTH, cls.CALL_ID_FIELDS)
    assert actual == EXPECTED[cls]
    assert field_names(cls) == tuple(name for name, _ in RFC_FIELDS[cls])
    assert pptp.MESSAGE_CLASSES[cls.TYPE] is cls


@each_class
def test_messages_are_frozen(cls: type) -> None:
    msg = cls()
    with pytest.raises(AttributeError):
        msg.__setattr__(field_names(cls)[0], 1)


# --- known answers (hand-assembled from the RFC diagrams) --------------------


def test_known_answer_outgoing_call_reply() -> None:
    msg = pptp.OutgoingCallReply(
        call_id=0x1234, peer_call_id=0xABCD, result_code=1, error_code=0, cause_code=0x0102,
        connect_speed=64000, packet_receive_window_size=16, packet_processing_delay=3,
        physical_channel_id=0xDEADBEEF,
    )
    wire = bytes.fromhex(
        "0020 0001 1a2b3c4d 0008 0000 1234 abcd 01 00 0102 0000fa00 0010 0003 deadbeef"
    )
    assert pptp.build(msg) == wire
    assert pptp.parse(wire) == msg


def test_known_answer_incoming_call_reply_is_24_bytes() -> None:
    msg = pptp.IncomingCallReply(call_id=7, peer_call_id=9, result_code=1, error_code=0,
                                 packet_receive_window_size=64, packet_transmit_delay=2)
    wire = bytes.fromhex("0018 0001 1a2b3c4d 000a 0000 0007 0009 01 00 0040 0002 0000")
    assert pptp.build(msg) == wire
    assert pptp.parse(wire) == msg


def test_known_answer_outgoing_call_request() -> None:
    msg = pptp.OutgoingCallRequest(
        call_id=0x0102, call_serial_number=0x0304, minimum_bps=300, maximum_bps=100000000,
        bearer_type=3, framing_type=3, packet_receive_window_size=64,
        packet_processing_delay=0, phone_number_length=3, phone_number=b"555", subaddress=b"x",
    )
    wire = (
        bytes.fromhex("00a8 0001 1a2b3c4d 0007 0000 0102 0304 0000012c 05f5e100")
        + bytes.fromhex("00000003 00000003 0040 0000 0003 0000")
        + b"555".ljust(64, b"\0")
        + b"x".ljust(64, b"\0")
    )
    assert pptp.build(msg) == wire
    assert pptp.parse(wire) == msg


def test_known_answer_set_link_info_and_call_clear() -> None:
    sli = pptp.SetLinkInfo(peer_call_id=0xBEEF, send_accm=0xFFFFFFFF, receive_accm=0x000A0000)
    assert pptp.build(sli) == bytes.fromhex(
        "0018 0001 1a2b3c4d 000f 0000 beef 0000 ffffffff 000a0000"
    )
    ccr = pptp.CallClearRequest(call_id=0x4242)
    assert pptp.build(ccr) == bytes.fromhex("0010 0001 1a2b3c4d 000c 0000 4242 0000")


# --- round trips --------------------------------------------------------------


@each_class
@pytest.mark.parametrize("make", [distinct_message, max_message, lambda cls: cls()],
                         ids=["distinct", "max", "defaults"])
def test_round_trip_concrete(cls: type, make) -> None:
    msg = make(cls)
    wire = pptp.build(msg)
    assert len(wire) == cls.LENGTH
    assert wire[:2] == cls.LENGTH.to_bytes(2, "big")
    assert wire[8:10] == int(cls.TYPE).to_bytes(2, "big")
    assert pptp.parse(wire) == msg
    assert pptp.build(pptp.parse(wire)) == wire
    assert pptp.peek_type(wire) is cls.TYPE
    assert pptp.message_length(wire) == cls.LENGTH


def test_strings_keep_inner_nuls_and_non_ascii() -> None:
    msg = pptp.StartControlConnectionRequest(host_name=b"h\x00\xff\xfe", vendor_string=b"\xe9t\xe9")
    assert pptp.parse(pptp.build(msg)) == msg


@given(any_message)
def test_parse_inverts_build(msg: pptp.Message) -> None:
    assert pptp.parse(pptp.build(msg)) == msg


@given(any_message)
def test_parsed_messages_are_what_their_constructor_makes(msg: pptp.Message) -> None:
    """parse skips the frozen dataclass's __init__: same type, fields, hash, and frozen."""
    parsed = pptp.parse(pptp.build(msg))
    assert type(parsed) is type(msg) and vars(parsed) == vars(msg)
    assert hash(parsed) == hash(msg) and repr(parsed) == repr(msg)
    with pytest.raises(AttributeError):
        parsed.__setattr__(field_names(type(msg))[0], 1)


@each_class
@given(data=st.data())
def test_build_inverts_parse(cls: type, data: st.DataObject) -> None:
    body = data.draw(st.binary(min_size=cls.LENGTH - 12, max_size=cls.LENGTH - 12))
    wire = valid_bytes(cls, body)
    msg = pptp.parse(wire)
    assert type(msg) is cls
    assert pptp.build(msg) == wire


# --- build validation ----------------------------------------------------------


@each_class
def test_build_rejects_out_of_range_ints(cls: type) -> None:
    for name, size in RFC_FIELDS[cls]:
        if isinstance(size, tuple):
            continue
        for bad in (-1, 1 << (8 * size)):
            with pytest.raises(FieldOutOfRange, match=name):
                pptp.build(cls(**{name: bad}))
        with pytest.raises(FieldOutOfRange):
            pptp.build(cls(**{name: "1"}))


@each_class
def test_build_rejects_bad_strings(cls: type) -> None:
    for name, size in RFC_FIELDS[cls]:
        if not isinstance(size, tuple):
            continue
        full = cls(**{name: b"a" * size[1]})
        assert pptp.parse(pptp.build(full)) == full
        with pytest.raises(FieldOutOfRange, match=f"{size[1] + 1} bytes"):
            pptp.build(cls(**{name: b"a" * (size[1] + 1)}))
        with pytest.raises(FieldOutOfRange, match="trailing NUL"):
            pptp.build(cls(**{name: b"a\x00"}))
        with pytest.raises(FieldOutOfRange):
            pptp.build(cls(**{name: "text"}))


def test_build_rejects_non_messages() -> None:
    with pytest.raises(TypeError):
        pptp.build(object())  # type: ignore[arg-type]


# --- corpus of bad input ------------------------------------------------------


@each_class
def test_every_truncation_is_reported(cls: type) -> None:
    wire = pptp.build(distinct_message(cls))
    for cut in range(len(wire)):
        with pytest.raises(TruncatedMessage):
            pptp.parse(wire[:cut])


@each_class
def test_trailing_bytes_are_rejected(cls: type) -> None:
    wire = pptp.build(distinct_message(cls))
    with pytest.raises(BadLength, match="after"):
        pptp.parse(wire + b"\x00")
    # Length field consistent with the data but not with the type.
    longer = (cls.LENGTH + 4).to_bytes(2, "big") + wire[2:] + bytes(4)
    with pytest.raises(BadLength, match=f"length {cls.LENGTH + 4}, expected {cls.LENGTH}"):
        pptp.parse(longer)


@each_class
@pytest.mark.parametrize("length", [0, 11, 12, 15, 0xFFFF])
def test_wrong_length_field(cls: type, length: int) -> None:
    wire = bytearray(pptp.build(distinct_message(cls)))
    wire[0:2] = length.to_bytes(2, "big")
    with pytest.raises(BadLength):
        pptp.parse(bytes(wire))


def test_length_error_names_the_message() -> None:
    wire = bytearray(pptp.build(pptp.OutgoingCallRequest()))
    wire[0:2] = (160).to_bytes(2, "big")
    with pytest.raises(BadLength, match=r"^Outgoing-Call-Request: length 160, expected 168$"):
        pptp.parse(bytes(wire[:160]))


@each_class
def test_wrong_cookie(cls: type) -> None:
    wire = bytearray(pptp.build(distinct_message(cls)))
    for cookie in (0, 0x4D3C2B1A, 0x1A2B3C4C):
        wire[4:8] = cookie.to_bytes(4, "big")
        with pytest.raises(BadMagicCookie):
            pptp.parse(bytes(wire))
        with pytest.raises(BadMagicCookie):
            pptp.peek_type(bytes(wire))


@each_class
@pytest.mark.parametrize("pptp_type", [0, 2, 0xFFFF])
def test_not_a_control_message(cls: type, pptp_type: int) -> None:
    wire = bytearray(pptp.build(distinct_message(cls)))
    wire[2:4] = pptp_type.to_bytes(2, "big")
    with pytest.raises(NotControlMessage):
        pptp.parse(bytes(wire))


@pytest.mark.parametrize("control_type", [0, 16, 0xFFFF])
def test_unknown_control_message_type(control_type: int) -> None:
    wire = header(16, control_type) + bytes(4)
    with pytest.raises(UnknownMessageType, match=str(control_type)):
        pptp.parse(wire)
    with pytest.raises(UnknownMessageType):
        pptp.peek_type(wire)


@each_class
def test_nonzero_reserved_fields(cls: type) -> None:
    wire = pptp.build(distinct_message(cls))
    for start, end in [(10, 12), *RESERVED_RANGES[cls]]:
        for pos in range(start, end):
            bad = bytearray(wire)
            bad[pos] = 0x01
            with pytest.raises(BadReservedField):
                pptp.parse(bytes(bad))


def test_message_length_and_peek_need_enough_bytes() -> None:
    assert pptp.message_length(b"\x00\xdc") == 220
    with pytest.raises(TruncatedMessage):
        pptp.message_length(b"\x00")
    with pytest.raises(TruncatedMessage):
        pptp.peek_type(pptp.build(pptp.EchoRequest())[:11])


@given(st.binary(max_size=300))
def test_random_bytes_raise_only_pptp_errors(data: bytes) -> None:
    try:
        msg = pptp.parse(data)
    except PptpError:
        return
    assert pptp.build(msg) == data


@given(any_message, st.data())
def test_corrupted_messages_raise_only_pptp_errors(msg: pptp.Message, data: st.DataObject) -> None:
    wire = bytearray(pptp.build(msg))
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(wire) - 1))
        wire[pos] = data.draw(st.integers(0, 255))
    wire = wire[: data.draw(st.integers(0, len(wire)))] + data.draw(st.binary(max_size=4))
    try:
        parsed = pptp.parse(bytes(wire))
    except PptpError:
        return
    assert pptp.build(parsed) == bytes(wire)


def test_code_tables() -> None:
    assert pptp.StartControlConnectionResult.UNSUPPORTED_PROTOCOL_VERSION == 5
    assert pptp.OutgoingCallResult.DO_NOT_ACCEPT == 7
    assert pptp.IncomingCallResult.DO_NOT_ACCEPT == 3
    assert pptp.CallDisconnectResult.REQUEST == 4
    assert pptp.GeneralErrorCode.PAC_ERROR == 6
    assert pptp.message_name(14) == "WAN-Error-Notify"
    assert pptp.message_name(1) == "Start-Control-Connection-Request"
    # Unknown result codes still round-trip.
    msg = pptp.OutgoingCallReply(result_code=200, error_code=99)
    assert pptp.parse(pptp.build(msg)) == msg
