"""A minimal PPTP server (PAC) for tests: answers control messages, records what it saw.

Run in a namespace: ``python -m ryu_pptp_alg.testbed.mini_pac --out FILE``. For every
message received it appends a JSON line ``{"peer": ..., "type": ..., call-ID fields}``
to FILE; it answers Start-Control-Connection-Request, Outgoing-Call-Request (server
call IDs 0x80, 0x81, ...), Call-Clear-Request (with Call-Disconnect-Notify) and
Echo-Request. With ``--incoming`` it places an Incoming-Call-Request (call ID 0x90)
after the Start-Control-Connection-Reply and answers the Incoming-Call-Reply with
Incoming-Call-Connected. It exits after ``--seconds``.
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time

from ryu_pptp_alg.codec import pptp


def serve(conn: socket.socket, peer: tuple[str, int], out: str, lock: threading.Lock,
          incoming: bool) -> None:
    buffer = b""
    next_call = 0x80
    server_ids: dict[int, int] = {}  # client call ID -> ours
    with conn:
        while True:
            data = conn.recv(4096)
            if not data:
                return
            buffer += data
            while len(buffer) >= 2 and len(buffer) >= pptp.message_length(buffer):
                length = pptp.message_length(buffer)
                msg, buffer = pptp.parse(buffer[:length]), buffer[length:]
                record = {"peer": f"{peer[0]}:{peer[1]}", "type": type(msg).__name__,
                          **{name: getattr(msg, name) for name in msg.CALL_ID_FIELDS}}
                with lock, open(out, "a") as f:
                    f.write(json.dumps(record) + "\n")
                reply: list[pptp.Message] = []
                match msg:
                    case pptp.StartControlConnectionRequest():
                        reply = [pptp.StartControlConnectionReply()]
                        if incoming:
                            reply.append(pptp.IncomingCallRequest(call_id=0x90))
                    case pptp.IncomingCallReply(call_id=call_id):
                        reply = [pptp.IncomingCallConnected(peer_call_id=call_id)]
                    case pptp.OutgoingCallRequest(call_id=call_id):
                        reply = [pptp.OutgoingCallReply(call_id=next_call, peer_call_id=call_id)]
                        server_ids[call_id] = next_call
                        next_call += 1
                    case pptp.CallClearRequest(call_id=call_id) if call_id in server_ids:
                        reply = [pptp.CallDisconnectNotify(call_id=server_ids.pop(call_id))]
                    case pptp.EchoRequest(identifier=ident):
                        reply = [pptp.EchoReply(identifier=ident)]
                for message in reply:
                    conn.sendall(pptp.build(message))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--incoming", action="store_true", help="place an incoming call")
    args = parser.parse_args()
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", pptp.PPTP_PORT))
    server.listen(8)
    server.settimeout(0.2)
    print("listening", flush=True)
    lock = threading.Lock()
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        try:
            conn, peer = server.accept()
        except TimeoutError:
            continue
        threading.Thread(target=serve, args=(conn, peer, args.out, lock, args.incoming),
                         daemon=True).start()


if __name__ == "__main__":
    main()
