"""A minimal OpenFlow 1.3 controller that only counts packet-ins (and answers echoes).

For measuring what a switch sends to its controller (meters, rate limits, queue
overflow) without a real controller's own limits in the way: it reads as fast as the
socket delivers. One switch connection; listens on 127.0.0.1 at :attr:`port`.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time

OFP_VERSION = 4
OFPT_HELLO, OFPT_ECHO_REQUEST, OFPT_ECHO_REPLY, OFPT_PACKET_IN = 0, 2, 3, 10


class PacketInSink:
    def __init__(self) -> None:
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(1)
        self._server.settimeout(0.5)
        self.port: int = self._server.getsockname()[1]
        self.packet_ins = 0
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> PacketInSink:
        self._thread.start()
        return self

    def _run(self) -> None:
        conn = None
        while not self._stop.is_set() and conn is None:
            with contextlib.suppress(TimeoutError):
                conn, _ = self._server.accept()
        if conn is None:
            return
        conn.settimeout(0.5)
        conn.sendall(struct.pack("!BBHI", OFP_VERSION, OFPT_HELLO, 8, 1))
        buf = b""
        with conn:
            while not self._stop.is_set():
                try:
                    data = conn.recv(1 << 20)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                buf += data
                while len(buf) >= 8:
                    _version, kind, length, xid = struct.unpack("!BBHI", buf[:8])
                    if length < 8 or len(buf) < length:
                        break
                    message, buf = buf[:length], buf[length:]
                    if kind == OFPT_HELLO:
                        self.connected.set()
                    elif kind == OFPT_ECHO_REQUEST:
                        conn.sendall(struct.pack("!BBHI", OFP_VERSION, OFPT_ECHO_REPLY, length,
                                                 xid) + message[8:])
                    elif kind == OFPT_PACKET_IN:
                        self.packet_ins += 1

    def wait_connected(self, timeout: float = 10) -> None:
        if not self.connected.wait(timeout):
            raise TimeoutError(f"no switch connected to 127.0.0.1:{self.port} in {timeout}s")
        time.sleep(0.5)  # let the switch finish its side of the handshake

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(3)
        self._server.close()

    def __enter__(self) -> PacketInSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
