"""Compatibility shim: Ryu 4.34 on Python 3.11.

Ryu's ``ryu.app.wsgi`` does ``from eventlet.wsgi import ALREADY_HANDLED`` at
import time. Eventlet removed that sentinel in 0.30.3 (it now tracks an
already-handled response with ``eventlet.wsgi.WSGI_LOCAL.already_handled``),
and every eventlet release that runs on Python 3.11 is newer than that, so
stock ``ryu-manager`` dies with ImportError before loading any app.

Ryu uses the sentinel in one place: a websocket handler returns it as the
response body after the websocket code has already written to the socket. With
a modern eventlet the websocket code sets ``WSGI_LOCAL.already_handled`` itself
and the body is ignored, so an empty body is a faithful stand-in.

``apply()`` is idempotent and does nothing on an eventlet that still has the
sentinel, so ``ryu-manager ryu_pptp_alg.app`` keeps working where Ryu runs
unpatched.
"""

from __future__ import annotations

import eventlet.wsgi

# An empty, immutable body: eventlet iterates it and writes nothing.
_ALREADY_HANDLED_STANDIN: tuple[bytes, ...] = ()


def apply() -> bool:
    """Install the shim if needed; return True when it was installed."""
    if hasattr(eventlet.wsgi, "ALREADY_HANDLED"):
        return False
    eventlet.wsgi.ALREADY_HANDLED = _ALREADY_HANDLED_STANDIN
    return True
