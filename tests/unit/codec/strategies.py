"""Independent RFC 2637 field table, hypothesis strategies and sample messages.

The table is written from the RFC, not derived from the codec, so a layout
mistake in the codec shows up as a test failure.
"""

from __future__ import annotations

from dataclasses import fields

from hypothesis import strategies as st

from ryu_pptp_alg.codec import pptp

# (field, size): int size 1/2/4 = unsigned int of that many bytes; ("s", n) = n-byte string.
# Reserved fields are omitted; RFC order.
RFC_FIELDS: dict[type, tuple[tuple[str, int | tuple[str, int]], ...]] = {
    pptp.StartControlConnectionRequest: (
        ("protocol_version", 2), ("framing_capabilities", 4), ("bearer_capabilities", 4),
        ("maximum_channels", 2), ("firmware_revision", 2),
        ("host_name", ("s", 64)), ("vendor_string", ("s", 64)),
    ),
    pptp.StartControlConnectionReply: (
        ("protocol_version", 2), ("result_code", 1), ("error_code", 1),
        ("framing_capabilities", 4), ("bearer_capabilities", 4), ("maximum_channels", 2),
        ("firmware_revision", 2), ("host_name", ("s", 64)), ("vendor_string", ("s", 64)),
    ),
    pptp.StopControlConnectionRequest: (("reason", 1),),
    pptp.StopControlConnectionReply: (("result_code", 1), ("error_code", 1)),
    pptp.EchoRequest: (("identifier", 4),),
    pptp.EchoReply: (("identifier", 4), ("result_code", 1), ("error_code", 1)),
    pptp.OutgoingCallRequest: (
        ("call_id", 2), ("call_serial_number", 2), ("minimum_bps", 4), ("maximum_bps", 4),
        ("bearer_type", 4), ("framing_type", 4), ("packet_receive_window_size", 2),
        ("packet_processing_delay", 2), ("phone_number_length", 2),
        ("phone_number", ("s", 64)), ("subaddress", ("s", 64)),
    ),
    pptp.OutgoingCallReply: (
        ("call_id", 2), ("peer_call_id", 2), ("result_code", 1), ("error_code", 1),
        ("cause_code", 2), ("connect_speed", 4), ("packet_receive_window_size", 2),
        ("packet_processing_delay", 2), ("physical_channel_id", 4),
    ),
    pptp.IncomingCallRequest: (
        ("call_id", 2), ("call_serial_number", 2), ("call_bearer_type", 4),
        ("physical_channel_id", 4), ("dialed_number_length", 2), ("dialing_number_length", 2),
        ("dialed_number", ("s", 64)), ("dialing_number", ("s", 64)), ("subaddress", ("s", 64)),
    ),
    pptp.IncomingCallReply: (
        ("call_id", 2), ("peer_call_id", 2), ("result_code", 1), ("error_code", 1),
        ("packet_receive_window_size", 2), ("packet_transmit_delay", 2),
    ),
    pptp.IncomingCallConnected: (
        ("peer_call_id", 2), ("connect_speed", 4), ("packet_receive_window_size", 2),
        ("packet_transmit_delay", 2), ("framing_type", 4),
    ),
    pptp.CallClearRequest: (("call_id", 2),),
    pptp.CallDisconnectNotify: (
        ("call_id", 2), ("result_code", 1), ("error_code", 1), ("cause_code", 2),
        ("call_statistics", ("s", 128)),
    ),
    pptp.WanErrorNotify: (
        ("peer_call_id", 2), ("crc_errors", 4), ("framing_errors", 4),
        ("hardware_overruns", 4), ("buffer_overruns", 4), ("timeout_errors", 4),
        ("alignment_errors", 4),
    ),
    pptp.SetLinkInfo: (("peer_call_id", 2), ("send_accm", 4), ("receive_accm", 4)),
}

ALL_CLASSES = tuple(RFC_FIELDS)


def _field_strategy(size: int | tuple[str, int]) -> st.SearchStrategy:
    if isinstance(size, tuple):
        return st.binary(max_size=size[1]).map(lambda b: b.rstrip(b"\x00"))
    return st.integers(0, (1 << (8 * size)) - 1)


def message_strategy(cls: type) -> st.SearchStrategy:
    return st.builds(cls, **{name: _field_strategy(size) for name, size in RFC_FIELDS[cls]})


any_message = st.one_of([message_strategy(cls) for cls in ALL_CLASSES])


def max_message(cls: type) -> pptp.Message:
    """Every int at its maximum, every string full length with non-ASCII bytes."""
    values = {}
    for name, size in RFC_FIELDS[cls]:
        if isinstance(size, tuple):
            values[name] = bytes((0x80 + i) % 256 or 1 for i in range(size[1]))
        else:
            values[name] = (1 << (8 * size)) - 1
    return cls(**values)


def distinct_message(cls: type, seed: int = 0) -> pptp.Message:
    """Every field a different, recognisable value (catches swapped fields)."""
    values = {}
    for i, (name, size) in enumerate(RFC_FIELDS[cls], start=1 + seed):
        if isinstance(size, tuple):
            values[name] = f"{name[:6]}-{i}".encode()
        else:
            values[name] = (0x0102_0304 * i + 7 * i) % (1 << (8 * size)) or i
    return cls(**values)


def field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))
