"""Log lines that name their gateway, and one structured line per call event.

Every line a gateway logs starts ``gateway=NAME dpid=0x1`` (``GatewayLog``); a call event
(requested, established, path, closed with its reason) is one ``call event=...`` line of
key=value pairs (``log_call``), so an operator can grep one client, call ID or session.
Not compiled (``compiled.py``): mypyc classes cannot subclass LoggerAdapter.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

from ryu_pptp_alg.records import Call, Conn
from ryu_pptp_alg.session import session_id

Log = logging.Logger | logging.LoggerAdapter[Any]


def _value(text: str) -> str:
    """A key=value value: quoted only if it would not read back as one word."""
    if text and all(c.isprintable() and c not in ' ="\\' for c in text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class GatewayLog(logging.LoggerAdapter[logging.Logger]):
    """Prefixes a gateway's lines with its name and dpid; also sets them as the record's
    ``gateway`` and ``dpid`` attributes, for a formatter or a filter."""

    def __init__(self, logger: logging.Logger, name: str, dpid: int) -> None:
        super().__init__(logger, {"gateway": name, "dpid": dpid})
        prefix = f"gateway={_value(name)} dpid={dpid:#x} " if name else f"dpid={dpid:#x} "
        self.prefix = prefix.replace("%", "%%")  # the message is a %-format

    def process(self, msg: Any, kwargs: MutableMapping[str, Any],
                ) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return self.prefix + str(msg), kwargs


CALL_EVENT = ("call event=%s session=%s client=%s:%d server=%s:%d public=%s:%d "
              "direction=%s client_call_id=%d public_call_id=%d server_call_id=%s path=%s%s")


def log_call(log: Log, dpid: int, event: str, conn: Conn, call: Call, path: str,
             detail: str = "", level: int = logging.INFO) -> None:
    """One call event as one line; ``detail`` is more pairs, e.g. ``reason=idle``."""
    if log.isEnabledFor(level):
        log.log(level, CALL_EVENT, event, session_id(dpid, conn.id), conn.client_ip,
                conn.client_port, conn.server_ip, conn.server_port, conn.public_ip,
                conn.public_port, conn.direction, call.client_call_id, call.public_call_id,
                "-" if call.server_call_id is None else call.server_call_id, path,
                f" {detail}" if detail else "")
