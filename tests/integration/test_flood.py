"""Issue 13, hostile and overloaded: a legitimate call set up while a flood runs.

    old 10.0.0.10 --1-\\                                          /- srv 198.51.100.10 (pptpd)
    new 10.0.0.11 --2--[OVS + ryu-pptp-alg, 203.0.113.1-3]--10--[hub]
    fin 10.0.0.66 --3-/   (flooder)                              \\- fout 192.0.2.66 (flooder)

The outside hosts share one switch port (a Linux bridge behind port 10, as behind a real
uplink), so a defence keyed by the switch port cannot tell them apart. At the port
forward (inbound): pptpd 10.0.0.10 inside behind 203.0.113.1; ``old`` 192.0.2.30, ``new``
192.0.2.31 and the flooder 192.0.2.66 outside, all behind the one uplink.

``old``'s call is up and carrying PPP (LCP echoes both ways every 0.5 s) before the flood
starts; ``FLOOD_RATE`` frames/s (default 50,000) run for ``FLOOD_SECONDS`` (default 30,
the issue's figure; shorten it for local runs) and ``new`` starts its call 2 s into the
flood. Criteria (``ryu_pptp_alg.testbed.flood_scenario.judge``):

- the new call's PPP link is up within 5 s of starting it (through Linux: about 1 s);
- the call already up misses at most 1 echo reply on either end during the flood;
- the gateway keeps answering the new client's ARP (a request every 0.5 s, 1 s to
  answer): never 3 s without an answer during the flood (a host's kernel gives up after
  3 unanswered requests 1 s apart);
- the controller's control connections stay at or under the cap it reports
  (``limits.max_connections`` in ``/pptp/gateways``, else 4096, said so), its RSS
  under the memory cap it reports (else its RSS before the flood + 64 MiB), and its REST
  API answers at least half of the polls (every 0.5 s, 2 s timeout).

Cases: SYNs to the server's port 1723 from an inside host, the same with sources spoofed
from 10.0.0.128/25, junk GRE (random call IDs) from outside to the public address, junk
ARP (requests and replies, random sender addresses) for the gateway's inside address;
SYNs from outside at a port forward; and the same outbound cases through the Linux
reference NAT, which must pass them (the criteria are met by a NAT that copes), except
the spoofed SYN flood, which it does not survive either (xfail, with what was measured).
Failures list every figure measured. Harness
checks come first: the flooder's frames are well formed, one flooder gets at least 50k
SYN/s through an OVS userspace bridge here, and OpenFlow meters (per flow, and the
virtual controller meter) enforce their rates in the userspace datapath.
"""

from __future__ import annotations

import os
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from ryu_pptp_alg.testbed import flood_scenario as fs
from ryu_pptp_alg.testbed import ovs
from ryu_pptp_alg.testbed.controller import free_port
from ryu_pptp_alg.testbed.flood import Flooder, interface_mac
from ryu_pptp_alg.testbed.netns import Namespace
from ryu_pptp_alg.testbed.of_sink import PacketInSink
from ryu_pptp_alg.testbed.proc import have
from tests.conftest import REPORT, require

pytestmark = pytest.mark.integration

FLOOD_SECONDS = float(os.environ.get("FLOOD_SECONDS", "30"))
FLOOD_RATE = float(os.environ.get("FLOOD_RATE", "50000"))
REQUIRED_RATE = 50_000  # the floor for one flooder through the bridge


@pytest.fixture
def peers_available(ovs_running):
    for tool in ("pptp", "pptpd", "iptables", "gcc"):
        require(have(tool), f"{tool} is not installed (run make test)")


def report(title: str, lines: list[str]) -> None:
    REPORT.append(f"{title}:")
    REPORT.extend(f"  {line}" for line in lines)


def fail_with(title: str, failures: list[str], outcome: fs.Outcome) -> None:
    lines = [title, *[f"- {f}" for f in failures], "figures:",
             *[f"  {line}" for line in outcome.figures()]]
    pytest.fail("\n".join(lines), pytrace=False)


# --- the harness itself -----------------------------------------------------------------------

def capture(ns: Namespace, path: Path, bpf: str, run_flood) -> list:
    """Frames matching ``bpf`` arriving on ``ns``'s eth0 while ``run_flood()`` runs."""
    from scapy.utils import rdpcap
    dump = ns.popen(["tcpdump", "-i", "eth0", "-n", "-U", "--immediate-mode", "-B", "8192",
                     "-Q", "in", "-w", str(path), bpf],
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert dump.stderr is not None
        first = dump.stderr.readline()  # "listening on eth0, ..."
        assert "listening" in first, f"tcpdump: {first}"
        time.sleep(1.0)  # it says so a little before it captures
        run_flood()
        time.sleep(1.0)
    finally:
        dump.terminate()
        dump.wait(10)
    return list(rdpcap(str(path)))


def test_flooder_frames_are_well_formed(ovs_running, run_id, tmp_path):
    """Each mode on a plain veth: checksums right, fields random, rate and bound kept."""
    require(have("gcc") and have("tcpdump"), "gcc or tcpdump missing")
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import ARP, Ether
    with Namespace(f"fc{run_id}a") as sender, Namespace(f"fc{run_id}b") as receiver:
        sender.veth_to(receiver, "eth0", "eth0", "10.0.0.66/24", "10.0.0.1/24")
        for ns in (sender, receiver):
            ns.run("ethtool", "-K", "eth0", "tx", "off", check=False)
        gw_mac = interface_mac(receiver)
        rate, seconds = 2000, 1.0
        results = {}
        cases = {"syn": ("syn", "198.51.100.10", None, "tcp"),
                 "syn-spoofed": ("syn", "198.51.100.10", "10.0.0.128/25", "tcp"),
                 "gre": ("gre", "203.0.113.1", None, "ip proto 47"),
                 "arp": ("arp", "10.0.0.1", "10.0.0.128/25", "arp")}
        frames, arrived = {}, {}

        def rx_packets() -> int:
            return int(receiver.run("cat", "/sys/class/net/eth0/statistics/rx_packets").stdout)
        for name, (mode, dst, spoof, bpf) in cases.items():
            def go(mode=mode, dst=dst, spoof=spoof, name=name):
                before = rx_packets()
                results[name] = Flooder(sender, mode, dst, rate, seconds, dst_mac=gw_mac,
                                        spoof=spoof).start().wait()
                time.sleep(0.2)
                arrived[name] = rx_packets() - before
            frames[name] = capture(receiver, tmp_path / f"{name}.pcap", bpf, go)

    for name, result in results.items():
        assert result.stopped_by == "time" and result.send_errors == 0, result
        assert 0.9 * rate * seconds <= result.sent <= 1.1 * rate * seconds, result
        # Every frame sent arrived (the odd IPv6 neighbour discovery frame besides).
        assert result.sent <= arrived[name] <= result.sent + 5, (name, arrived[name], result)
        assert len(frames[name]) >= 0.9 * result.sent, (name, len(frames[name]), result)

    syns = [f for f in frames["syn"] if TCP in f]
    assert len(syns) == len(frames["syn"])
    for frame in syns:
        ip, tcp = frame[IP], frame[TCP]
        rebuilt = IP(bytes(ip))
        del rebuilt.chksum
        del rebuilt[TCP].chksum
        rebuilt = IP(bytes(rebuilt))
        assert (ip.chksum, tcp.chksum) == (rebuilt.chksum, rebuilt[TCP].chksum), frame.show(
            dump=True)
        assert (ip.src, ip.dst, tcp.dport, tcp.flags) == ("10.0.0.66", "198.51.100.10", 1723,
                                                          "S")
        assert frame[Ether].dst == gw_mac
    assert len({f[TCP].sport for f in syns}) > 0.9 * len(syns)
    spoofed = {f[IP].src for f in frames["syn-spoofed"]}
    assert len(spoofed) > 100
    assert all(s.startswith("10.0.0.") and 128 < int(s.rsplit(".", 1)[1]) < 255
               for s in spoofed)
    gre = [bytes(f) for f in frames["gre"]]
    # Enhanced GRE: flags K and S, version 1, protocol PPP; then length, call ID, sequence.
    assert all(g[23] == 47 and g[34:38] == b"\x30\x01\x88\x0b" for g in gre)
    assert len({g[40:42] for g in gre}) > 0.9 * len(gre)  # random call IDs
    for g in (IP(f[14:]) for f in gre[:50]):
        check = IP(bytes(g))
        del check.chksum
        assert IP(bytes(check)).chksum == g.chksum
    arps = [f[ARP] for f in frames["arp"]]
    assert {a.op for a in arps} == {1, 2}
    assert {a.pdst for a in arps} == {"10.0.0.1"}
    assert len({a.hwsrc for a in arps}) > 0.9 * len(arps)


def test_one_flooder_reaches_50k_syn_per_second_through_an_ovs_bridge(ovs_running, run_id):
    """The load the flood tests rely on: SYNs arriving on the far side of a userspace
    bridge (a plain in_port=1 -> 2 flow), counted on the receiver's interface."""
    require(have("gcc"), "gcc is missing")
    seconds = 3.0
    with ExitStack() as stack:
        bridge = stack.enter_context(ovs.Bridge(f"pfc{run_id}", 0xF0, free_port()))
        sender = stack.enter_context(Namespace(f"fc{run_id}s"))
        receiver = stack.enter_context(Namespace(f"fc{run_id}r"))
        sender.attach(bridge, 1, "10.0.0.66/24")
        receiver.attach(bridge, 2, "10.0.0.99/24")
        ovs.ofctl("add-flow", bridge.name, "in_port=1,actions=output:2")
        time.sleep(0.5)

        def received() -> int:
            return int(receiver.run("cat", "/sys/class/net/eth0/statistics/rx_packets")
                       .stdout)
        before = received()
        result = Flooder(sender, "syn", "198.51.100.10", max(FLOOD_RATE, 60_000), seconds,
                         dst_mac=interface_mac(receiver), src="10.0.0.66").start().wait()
        time.sleep(0.3)
        arrived = received() - before
    rate = arrived / result.elapsed
    report("flooder through an OVS userspace bridge", [
        result.describe(), f"arrived on the far side: {arrived} = {rate:,.0f}/s"])
    assert rate >= REQUIRED_RATE, (f"only {rate:,.0f} SYN/s arrived through the bridge "
                                   f"({result.describe()})")


def test_ovs_meters_in_the_userspace_datapath(ovs_running, run_id):
    """What a defence can rely on here: OpenFlow 1.3 meters (pktps, drop band) before an
    output port and before the controller enforce their rates in the userspace datapath.
    A meter without ``burst`` starts with one second's worth of tokens: over T seconds a
    meter of rate R passes about R * (T + 1). The virtual ``meter=controller`` (every
    packet-in of the bridge, on top of a flow's own meter) is measured and reported, not
    asserted (see below). Packet-ins are counted by a bare OpenFlow endpoint
    (:class:`PacketInSink`) that reads as fast as they come."""
    require(have("gcc"), "gcc is missing")
    seconds, rate = 3.0, 20_000
    measured: dict[str, tuple[float, float]] = {}  # case -> (got, expected)
    with ExitStack() as stack:
        sink = stack.enter_context(PacketInSink())
        bridge = stack.enter_context(ovs.Bridge(f"pfm{run_id}", 0xF3, sink.port))
        sender = stack.enter_context(Namespace(f"fm{run_id}s"))
        receiver = stack.enter_context(Namespace(f"fm{run_id}r"))
        sender.attach(bridge, 1, "10.0.0.66/24")
        receiver.attach(bridge, 2, "10.0.0.99/24")
        sink.wait_connected()
        name = bridge.name
        ovs.ofctl("add-meter", name, "meter=1,pktps,stats,bands=type=drop,rate=1000")
        ovs.ofctl("add-meter", name, "meter=2,pktps,stats,bands=type=drop,rate=500")
        for port, actions in ((1001, "meter:1,output:2"), (1002, "meter:2,controller"),
                              (1003, "controller")):
            ovs.ofctl("add-flow", name, f"in_port=1,tcp,tp_dst={port},actions={actions}")
        time.sleep(0.5)
        mac = interface_mac(receiver)

        def rx_packets() -> int:
            return int(receiver.run("cat", "/sys/class/net/eth0/statistics/rx_packets").stdout)

        def flood(port: int) -> tuple[int, int, float]:
            """(arrived at the receiver, packet-ins, seconds) of one flood to ``port``."""
            rx, pins = rx_packets(), sink.packet_ins
            result = Flooder(sender, "syn", "198.51.100.10", rate, seconds, dst_mac=mac,
                             src="10.0.0.66", dport=port).start().wait()
            time.sleep(1.0)
            return rx_packets() - rx, sink.packet_ins - pins, result.elapsed

        arrived, _, took = flood(1001)
        measured["meter:1 (1000 pktps), output:2: arrived"] = (arrived, 1000 * (took + 1))
        _, pins, took = flood(1002)
        measured["meter:2 (500 pktps), controller: packet-ins"] = (pins, 500 * (took + 1))
        _, pins, took = flood(1003)
        measured[f"controller, no meter, {rate}/s offered: packet-ins"] = (pins, rate * took)
        ovs.ofctl("add-meter", name, "meter=controller,pktps,stats,bands=type=drop,rate=300")
        for port, actions in ((1004, "controller"), (1005, "meter:2,controller")):
            ovs.ofctl("add-flow", name, f"in_port=1,tcp,tp_dst={port},actions={actions}")
        # Not asserted, a fact to know: the datapath flow cached for the older flow (used
        # a second ago, within its 10 s idle time) is not revalidated when the controller
        # meter appears: it goes on unmetered until it expires.
        _, stale, stale_took = flood(1003)
        _, pins, took = flood(1004)
        measured["a new flow to the controller under meter=controller (300 pktps): "
                 "packet-ins"] = (pins, 300 * (took + 1))
        _, pins, took = flood(1005)
        measured["a new flow meter:2 (500 pktps), controller, under meter=controller (300): "
                 "packet-ins"] = (pins, 300 * (took + 1))
    lines = [f"{case}: {got:.0f} (expected about {expected:.0f})"
             for case, (got, expected) in measured.items()]
    lines.append(f"the older flow to the controller, its datapath flow still cached, right "
                 f"after meter=controller was added: {stale} packet-ins in {stale_took:.1f}s")
    report("OpenFlow meters in the userspace datapath (3 s floods of 20k SYN/s)", lines)
    # The controller meter is reported, not asserted: in one run of the whole file (other
    # bridges on the host's one netdev datapath at the time) it was not applied at all.
    off = [line for line, (case, (got, expected)) in zip(lines, measured.items(),
                                                         strict=False)
           if "meter=controller" not in case and not 0.85 * expected <= got <= 1.15 * expected]
    assert not off, "meters enforced other rates than configured:\n" + "\n".join(off)


# --- the legitimate call under flood ---------------------------------------------------------

@pytest.fixture
def alg_net(peers_available, run_id, tmp_path):
    with ExitStack() as stack:
        def build(direction: str) -> fs.FloodNet:
            return fs.build_alg(stack, run_id, tmp_path, direction)
        yield build


@pytest.mark.parametrize("case", ["syn", "syn-spoofed", "gre", "arp"])
def test_legit_call_under_flood(alg_net, case):
    net = alg_net("outbound")
    outcome = fs.run_case(net, fs.CASES[case], FLOOD_SECONDS, FLOOD_RATE)
    failures = fs.judge(outcome)
    if failures:
        fail_with(f"ryu-pptp-alg under flood ({case}): {len(failures)} criteria failed",
                  failures, outcome)
    report(f"ryu-pptp-alg under a {case} flood", outcome.figures())


def test_legit_call_under_syn_flood_at_a_port_forward(alg_net):
    net = alg_net("inbound")
    outcome = fs.run_case(net, fs.CASES["syn-forward"], FLOOD_SECONDS, FLOOD_RATE)
    failures = fs.judge(outcome)
    if failures:
        fail_with(f"ryu-pptp-alg under a SYN flood at a port forward: {len(failures)} "
                  "criteria failed", failures, outcome)
    report("ryu-pptp-alg under a SYN flood at its port forward", outcome.figures())


LINUX_SPOOFED = pytest.param("syn-spoofed", marks=pytest.mark.xfail(
    strict=False, reason="the reference does not always survive it: in three runs of four "
    "the legitimate call never came up (once checked: pptpd never saw its connection) while "
    "the router, absorbing 7-13k spoofed SYN/s, held ~64.5k conntrack entries, every source "
    "port of its one public address towards the server's port 1723 (spoofed SYNs are never "
    "reset, so they stay for the 120 s SYN_SENT timeout)"))


@pytest.mark.parametrize("case", ["syn", LINUX_SPOOFED, "gre", "arp"])
def test_linux_reference_nat_under_flood(peers_available, run_id, tmp_path, case):
    """The reference: the same network through MASQUERADE + CT --helper pptp."""
    with ExitStack() as stack:
        net = fs.build_linux(stack, run_id, tmp_path)
        outcome = fs.run_case(net, fs.CASES[case], FLOOD_SECONDS, FLOOD_RATE)
    failures = fs.judge(outcome)
    if failures:
        fail_with(f"the Linux reference NAT under flood ({case}) missed criteria: the "
                  "criteria or the harness need another look", failures, outcome)
    report(f"Linux NAT under a {case} flood", outcome.figures())
