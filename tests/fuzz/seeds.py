"""The seed corpora (``python -m tests.fuzz seeds`` rewrites tests/fuzz/corpus).

Small and deterministic: each seed is a scenario written as the choices the target reads,
so the fuzzer starts from deep states and from the shapes of the defects issue 13 lists.
"""

from __future__ import annotations

import shutil
from typing import Any

from ryu_pptp_alg.codec import frame as fr
from ryu_pptp_alg.codec import gre, pptp
from tests.fuzz import target_gateway as tg
from tests.fuzz.engine import CORPUS, Writer


class Script(Writer):
    """Operations of the gateway target, written in the order it reads them."""

    def __init__(self, variant: int = 0, preset: int = 0) -> None:
        super().__init__()
        self.u8(variant).u8(preset)

    def op(self, name: str) -> Script:
        return self.u8(tg.OP[name])  # type: ignore[return-value]

    def choose(self, options: tuple[int, ...], value: int, width: int) -> Script:
        if value in options:
            return self.u8(options.index(value))  # type: ignore[return-value]
        return self.u8(len(options)).uint(width, value)  # type: ignore[return-value]

    def call_id(self, value: int) -> Script:
        return self.u8(240).u16(value)  # type: ignore[return-value]

    def open(self, inbound: bool, node: tg.Node, sport: int, dst: Any, flags: int,
             isn: int = 0x10000, source: tg.Node | None = None) -> Script:
        """``source``: the host whose address the client claims (sets flag 8)."""
        flags = flags | 8 if source is not None else flags & ~8
        self.op("open").u8(int(inbound)).choose(tg.SPORTS, sport, 2).u32(isn).u8(flags)
        if source is not None:
            self.u8(tg.NODES.index(source))
        if inbound:
            return self.u8((tg.S, tg.Q).index(node)).u8(tg.PUBLIC.index(dst))  # type: ignore[return-value]
        self.u8((tg.S, tg.Q, tg.S, tg.Q, tg.C2, tg.SRV).index(dst)).u8(0)
        return self.u8(tg.INSIDE.index(node))  # type: ignore[return-value]

    def call(self, link: int, client_id: int, server_id: int, result: int = 1) -> Script:
        self.op("script").u8(link).u8(1).call_id(client_id).call_id(server_id)
        return self.choose((1, 1, 1, 2), result, 1)

    def start(self, link: int) -> Script:
        return self.op("script").u8(link).u8(0).u8(0)  # type: ignore[return-value]

    def message(self, link: int, side: int, msg_type: int, ids: tuple[int, ...],
                mode: int = 0, split: bytes = b"") -> Script:
        """``ids``: the call-ID fields in order; result codes stay 1."""
        self.op("message").u8(link).u8(side).u8(msg_type - 1)
        cls = pptp.MESSAGE_CLASSES[pptp.ControlMessageType(msg_type)]
        ids_left = list(ids)
        for name in (f.name for f in cls.__dataclass_fields__.values()):
            if name in cls.CALL_ID_FIELDS:
                self.call_id(ids_left.pop(0))
            elif name == "result_code":
                self.u8(0)
        return self.u8(mode).raw(split)  # type: ignore[return-value]

    def raw_tcp(self, link: int, side: int, flags: int, payload: bytes = b"") -> Script:
        self.op("raw_tcp").u8(link).u8(side).choose(
            (tg.ACK, tg.ACK | tg.PSH, tg.FIN | tg.ACK, tg.RST, tg.RST | tg.ACK, tg.SYN,
             tg.SYN | tg.ACK, tg.FIN | tg.PSH | tg.ACK), flags, 1)
        return self.blob(payload).u8(0)  # type: ignore[return-value]

    def arp(self, node: tg.Node, opcode: int, sender: int, target: int, port: int | None = None) \
            -> Script:
        """``sender``/``target``: indexes into the target's choices (see op_arp)."""
        self.op("arp").u8(tg.NODES.index(node))
        self.choose((fr.ARP_REQUEST, fr.ARP_REPLY, fr.ARP_REQUEST, fr.ARP_REPLY, 0, 3), opcode, 2)
        self.u8(sender).u8(target)
        return self.u8(0) if port is None else self.u8(255).u8(tg.PORTS.index(port))  # type: ignore[return-value]

    def junk_tcp(self, port: int, source: int) -> Script:
        self.op("junk").u8(tg.PORTS.index(port)).u8(2).raw(bytes(5)).u8(0).u32(source)
        return self.u8(0).u8(0).u16(40000).u8(0).u32(1).u32(0).blob(b"")  # type: ignore[return-value]

    def tick(self, seconds: int) -> Script:
        return self.op("tick").choose((1, 1, 1, 2, 3, 5, 10, 31, 61), seconds, 1)


def gateway_seeds() -> dict[str, bytes]:
    everything = tg.LEARN | tg.OUTBOUND_CALL | tg.INBOUND_CALL | tg.SHARED_KEY
    basic = tg.LEARN | tg.OUTBOUND_CALL
    seeds = {f"preset-all-{name}": Script(v, everything).bytes()
             for v, name in enumerate(tg.VARIANTS)}
    seeds["data-after-fin"] = Script(0, basic).raw_tcp(0, 0, tg.FIN | tg.ACK) \
        .call(0, 9, 0x99).tick(10).bytes()
    seeds["reused-call-id"] = Script(0, basic).message(0, 0, 7, (7,)) \
        .message(0, 1, 8, (0x81, 7)).tick(61).bytes()
    seeds["split-shuffled"] = Script(0, basic).message(0, 0, 7, (12,), 4, bytes([3, 40, 100,
                                                                                   9, 5, 1])) \
        .message(0, 1, 8, (0x82, 12), 6, bytes([2, 20, 1, 0, 1])).op("flush").u8(0).u8(1).bytes()
    seeds["arp-spoof-wrong-side"] = Script(0, basic).arp(tg.C1, 1, 3, 0).bytes()
    seeds["arp-neither-side"] = Script(0, tg.OUTBOUND_CALL).arp(tg.S, 1, 0, 1, port=5).bytes()
    seeds["arp-bad-opcode"] = Script(0, basic).arp(tg.S, 3, 0, 1).bytes()
    seeds["inside-to-inside"] = Script(0, tg.LEARN).open(False, tg.C1, 40000, tg.C2, 1).bytes()
    seeds["spoofed-source"] = Script(0, tg.LEARN).open(False, tg.C1, 40000, tg.S, 1,
                                                       source=tg.Q).bytes()
    seeds["look-alike"] = Script(0, tg.LEARN | tg.INBOUND_CALL) \
        .open(False, tg.SRV, 1723, tg.Q, 3).open(True, tg.Q, 1723, tg.PUBLIC[0], 3) \
        .raw_tcp(1, 1, tg.RST).tick(10).bytes()
    junk = Script(0, tg.LEARN)
    for i in range(6):
        junk.junk_tcp(3 if i % 2 else 1, 0x0A000100 + i if i % 2 == 0 else 0xC0000200 + i)
    seeds["junk-sources"] = junk.bytes()
    seeds["restart-mid-call"] = Script(0, everything).op("restart").u8(1).call(0, 21, 0x121) \
        .tick(31).bytes()
    seeds["disconnect-wipe"] = Script(1, everything).op("disconnect").u8(1).tick(31) \
        .op("connect").call(1, 22, 0x122).bytes()
    seeds["barriers-held"] = Script(0, everything).op("barriers").u8(0).call(0, 23, 0x123) \
        .op("restart").u8(0).op("barriers").u8(2).bytes()
    seeds["forward-removed"] = Script(0, everything).op("forward").u8(0).u8(0) \
        .op("forward").u8(1).u8(1).u8(1).tick(2).bytes()
    seeds["mangled"] = Script(2, everything).op("mangled").u8(1).u8(0).u8(12).u8(240).u16(7) \
        .u8(2).u8(0).u8(0).op("mangled").u8(0).u8(1).u8(0).u8(5).u8(0).u8(0).bytes()
    seeds["slow-path-gre"] = Script(0, everything).op("gre").u8(tg.NODES.index(tg.S)).u8(0) \
        .call_id(7).u8(0).blob(b"\xff\x03").op("flow_removed").u8(0).u8(0).bytes()
    return seeds


def codec_seeds() -> dict[str, bytes]:
    seeds = {}
    for msg in (pptp.StartControlConnectionRequest(host_name=b"pns"),
                pptp.OutgoingCallRequest(call_id=7, phone_number=b"123"),
                pptp.OutgoingCallReply(call_id=0x80, peer_call_id=7),
                pptp.CallDisconnectNotify(call_id=0x80), pptp.SetLinkInfo(peer_call_id=7)):
        seeds[f"pptp-{type(msg).__name__}"] = bytes([0]) + pptp.build(msg)
    seeds["pptp-fields"] = bytes([1, 6]) + bytes(range(40))
    packet = gre.build_gre(gre.EnhancedGre(0x80, b"\xff\x03\xc0\x21", 1, 2))
    seeds["gre"] = bytes([2, 0, 0, 9]) + packet
    seeds["gre-fields"] = bytes([3, 0x0E, 0, 7, 4]) + b"ppp!" + bytes(10)
    host = tg.C1.host
    seeds["frame-tcp"] = bytes([4]) + host.tcp(tg.S.host.ip, 40000, 1723, 1, 2, tg.ACK,
                                              pptp.build(pptp.EchoRequest(identifier=1)))
    seeds["frame-arp"] = bytes([4]) + host.arp_request(tg.GW_IP)
    seeds["frame-built"] = bytes([5]) + bytes(range(1, 60))
    seeds["stream"] = bytes([6, 3, 7]) + bytes(40) + bytes([8, 0, 0x80, 0, 7, 12, 0, 9]) \
        + bytes([1, 0xFF]) + bytes([0, 30, 20, 60, 100, 10])
    return seeds


def config_seeds() -> dict[str, bytes]:
    example = (tg.__file__.rsplit("/tests/", 1)[0] + "/etc/gateways.example.yaml")
    with open(example, "rb") as f:
        text = f.read()
    return {"example-yaml": bytes([0]) + text, "mutated-dict": bytes([2, 1, 1, 0, 0, 2]),
            "mutated-yaml": bytes([5, 1, 1, 1, 0, 1]), "nested-yaml": bytes([7, 0, 8])}


def rest_seeds() -> dict[str, bytes]:
    add = bytes([0, 1, 1, 1, 0, 1, 4]) + bytes([0])  # add_forward, a body with two texts
    return {"add-remove": add + bytes([1, 1, 1, 0]),
            "post-json": bytes([3, 0, 2, 1, 0, 1, 3]),
            "post-nested": bytes([3, 0, 1, 0x03, 0xE8, 1, 0]),
            "delete-get": bytes([4, 1, 0, 0, 5, 0, 1])}


def write_all() -> None:
    for target, seeds in (("gateway", gateway_seeds()), ("codecs", codec_seeds()),
                          ("config", config_seeds()), ("rest", rest_seeds())):
        directory = CORPUS / target
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        for name, data in seeds.items():
            (directory / name).write_bytes(data)
        print(f"{directory}: {len(seeds)} seeds")
