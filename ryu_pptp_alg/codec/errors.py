"""Exception hierarchy for the pure codecs.

Every decoding or encoding failure raises a subclass of PptpError (control
channel) or GreError (data channel); both are ValueErrors, so nothing lower
level (IndexError, struct.error, ...) escapes a codec.
"""

from __future__ import annotations


class PptpError(ValueError):
    """Base class for PPTP control-message and control-stream errors."""


class TruncatedMessage(PptpError):
    """Fewer bytes than the message needs."""


class BadLength(PptpError):
    """Length field disagrees with the data or with the type's fixed length."""


class NotControlMessage(PptpError):
    """PPTP Message Type is not 1 (Control Message)."""


class BadMagicCookie(PptpError):
    """Magic Cookie is not 0x1A2B3C4D."""


class UnknownMessageType(PptpError):
    """Control Message Type outside 1..15."""


class BadReservedField(PptpError):
    """A reserved field is not zero."""


class FieldOutOfRange(PptpError):
    """A field value does not fit its wire encoding (raised by build)."""


class StreamDesync(PptpError):
    """The control stream no longer frames as PPTP messages."""


class ReassemblyOverflow(PptpError):
    """The reassembler would hold more than its configured byte budget."""


class GreError(ValueError):
    """Base class for enhanced GRE errors."""


class TruncatedGre(GreError):
    """Fewer bytes than the header or the declared payload needs."""


class NotEnhancedGre(GreError):
    """GRE version is not 1 or protocol is not 0x880B (PPP)."""


class BadGreFlags(GreError):
    """A flag that must be 0 is set, or the mandatory K bit is clear."""


class BadPayloadLength(GreError):
    """More bytes follow the header than the Key's payload length declares,
    or (on build) the payload does not fit 16 bits."""


class GreFieldOutOfRange(GreError):
    """A header field value does not fit its wire encoding (raised by build)."""
