"""The PPTP peer harness itself: real pptp-linux and pptpd with the PPP stand-in,
directly, through the Linux reference NAT (with and without its PPTP helper), and
the LD_PRELOAD shim forcing call IDs and source ports."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ryu_pptp_alg.testbed import ppp_standin
from ryu_pptp_alg.testbed.linux_nat import LinuxNat
from ryu_pptp_alg.testbed.netns import Namespace
from ryu_pptp_alg.testbed.pptp_peers import PptpClient, PptpServer
from ryu_pptp_alg.testbed.proc import HarnessError, have, run, wait_for
from ryu_pptp_alg.testbed.syslog import SyslogListener
from tests.conftest import require

SERVER_IP = "198.51.100.10"
NO_HELPER_WAIT = 8.0


def test_hdlc_fcs_and_framing():
    # RFC 1662 FCS-16 check value for "123456789" is 0x906E.
    assert ppp_standin.fcs16(b"123456789") ^ 0xFFFF == 0x906E
    frame = ppp_standin.lcp_packet(ppp_standin.LCP_ECHO_REQ, 7, b"\x7e\x7d\x01\x20\xff")
    encoded = ppp_standin.hdlc_encode(frame)
    assert encoded[0] == encoded[-1] == 0x7E
    assert all(b >= 0x20 for b in encoded[1:-1]) and 0x7E not in encoded[1:-1]
    decoder = ppp_standin.HdlcDecoder()
    assert decoder.feed(encoded[:5]) == [] and decoder.feed(encoded[5:] + encoded) == [frame] * 2
    corrupt = bytearray(encoded)
    corrupt[6] ^= 0x01
    assert decoder.feed(bytes(corrupt)) == [] and decoder.bad_fcs == 1


def test_two_standins_converge(tmp_path):
    """Two stand-ins on a socket pair open LCP and exchange echoes (no root needed)."""
    a, b = socket.socketpair()
    procs = [subprocess.Popen([sys.executable, "-m", "ryu_pptp_alg.testbed.ppp_standin",
                               "--fd", str(sock.fileno()), "--status", str(tmp_path / name),
                               "--echo-interval", "0.2"], pass_fds=[sock.fileno()])
             for name, sock in (("a.json", a), ("b.json", b))]
    try:
        def both_up() -> bool:
            try:
                stats = [json.loads((tmp_path / n).read_text()) for n in ("a.json", "b.json")]
            except (OSError, ValueError):
                return False
            return all(s["counters"]["lcp_echo_replies_received"] >= 2 for s in stats)
        wait_for(both_up, 10, "two stand-ins to exchange echoes")
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(5)
        a.close()
        b.close()
    final = json.loads((tmp_path / "a.json").read_text())
    assert final["exited"] and final["state"] == "opened" and final["counters"]["bad_fcs"] == 0


def test_syslog_listener_filters_by_program():
    require(have("logger"), "logger (bsdutils) is not installed")
    with SyslogListener() as listener:
        assert listener.path is not None
        for tag in ("pptpd", "other"):
            run(["logger", "-u", str(listener.path), "-t", tag, f"hello from {tag}"])
        line = listener.wait_for("hello from pptpd", "pptpd", timeout=5)
        assert line.program == "pptpd"
        listener.wait_for("hello from other", timeout=5)
        assert listener.messages("pptpd") == [str(line)]
        path = listener.path
    assert not path.exists()  # removed on exit, so a next listener starts clean


@pytest.fixture
def peers_env():
    require(os.geteuid() == 0, "PPTP peer tests need root")
    for command in ("ip", "iptables", "pptp", "pptpd", "pptpctrl", "gcc", "mount", "ss"):
        require(have(command), f"{command} is not installed (run make test)")


def wait_server_calls(server: PptpServer, count: int, timeout: float = 10) -> list[dict]:
    """Wait for ``count`` server-side calls whose LCP echoes were answered."""
    def up() -> list[dict] | None:
        calls = [c for c in server.calls() if c["counters"]["lcp_echo_replies_received"] > 0]
        return calls if len(calls) >= count else None
    try:
        return wait_for(up, timeout, f"{count} server-side PPP link(s)")
    except HarnessError as err:
        raise HarnessError(f"{err}\ncalls: {server.calls()}\nlog:\n"
                           + "\n".join(server.log())) from None


def assert_both_ways(status: dict) -> None:
    counters = status["counters"]
    assert status["state"] == "opened", status
    assert counters["lcp_echo_replies_received"] > 0, status
    assert counters["lcp_echo_requests_answered"] > 0, status
    assert counters["bad_fcs"] == 0, status


@pytest.fixture
def direct(peers_env, run_id):
    """Client 10.1.0.2 and server 10.1.0.1 on one veth."""
    with Namespace(f"pp{run_id}c") as client, Namespace(f"pp{run_id}s") as server:
        client.veth_to(server, "eth0", "eth0", "10.1.0.2/24", "10.1.0.1/24")
        yield client, server


@pytest.fixture
def nat_factory(peers_env, run_id):
    """Builds router + server (198.51.100.10, no route inside) + inside clients 10.0.0.2..."""
    made: list[LinuxNat | Namespace] = []

    def make(helper: bool = True, clients: int = 1) -> tuple[LinuxNat, Namespace,
                                                             list[Namespace]]:
        nat = LinuxNat(f"pp{run_id}r", helper=helper)
        made.append(nat)
        nat.create()
        server = Namespace(f"pp{run_id}s")
        made.append(server)
        server.create()
        nat.add_outside(server, f"{SERVER_IP}/24")
        hosts = []
        for index in range(clients):
            host = Namespace(f"pp{run_id}c{index}")
            made.append(host)
            host.create()
            nat.add_inside(host, f"10.0.0.{2 + index}/24")
            hosts.append(host)
        return nat, server, hosts

    yield make
    for thing in reversed(made):
        thing.delete()


def test_direct_call_comes_up(direct, tmp_path):
    client_ns, server_ns = direct
    with PptpServer(server_ns, "10.1.0.1", tmp_path / "srv") as server, \
            PptpClient(client_ns, "10.1.0.1", "10.1.0.2", tmp_path / "cli") as client:
        assert_both_ways(client.wait_ppp_up(10))
        (call,) = wait_server_calls(server, 1)
        assert_both_ways(call)
        assert call["ipparam"] == "10.1.0.2"
        assert any("Outgoing call established" in line for line in client.log())
        assert any("CTRL: Client 10.1.0.2 control connection started" in line
                   for line in server.log())
    # Everything we started in the namespaces is gone.
    assert client_ns.pids() == [] and server_ns.pids() == []


def test_through_linux_nat_with_helper(nat_factory, tmp_path):
    nat, server_ns, (client_ns,) = nat_factory(helper=True)
    assert "10.0.0.0" not in server_ns.run("ip", "route").stdout
    with PptpServer(server_ns, SERVER_IP, tmp_path / "srv") as server, \
            PptpClient(client_ns, SERVER_IP, "10.0.0.2", tmp_path / "cli") as client:
        assert_both_ways(client.wait_ppp_up(10))
        (call,) = wait_server_calls(server, 1)
        assert_both_ways(call)
        assert call["ipparam"] == nat.wan_ip  # the server saw the masqueraded address
        gre = [e for e in nat.conntrack() if e["proto"] == "gre"]
        assert gre, nat.conntrack_lines()
        assert any(e["orig"].get("src") == "10.0.0.2" for e in gre), gre


def test_through_linux_nat_without_helper_fails(nat_factory, tmp_path):
    _, server_ns, (client_ns,) = nat_factory(helper=False)
    with PptpServer(server_ns, SERVER_IP, tmp_path / "srv") as server, \
            PptpClient(client_ns, SERVER_IP, "10.0.0.2", tmp_path / "cli") as client:
        # The control connection works (plain TCP NAT) ...
        wait_for(lambda: any("Outgoing call established" in line for line in client.log()),
                 10, "the outgoing call on the control connection")
        # ... but GRE does not: no LCP echo reply within the bounded wait.
        deadline = time.monotonic() + NO_HELPER_WAIT
        while time.monotonic() < deadline:
            assert not client.ppp_up(), client.stats()
            assert not any(c["counters"]["lcp_echo_replies_received"] for c in server.calls())
            time.sleep(0.2)
        assert client.stats()["state"] != "opened"


def test_two_clients_same_call_id_and_port(nat_factory, tmp_path):
    nat, server_ns, (ns1, ns2) = nat_factory(helper=True, clients=2)
    with PptpServer(server_ns, SERVER_IP, tmp_path / "srv") as server, \
            PptpClient(ns1, SERVER_IP, "10.0.0.2", tmp_path / "c1",
                       call_id=0x4242, source_port=41723) as c1, \
            PptpClient(ns2, SERVER_IP, "10.0.0.3", tmp_path / "c2",
                       call_id=0x4242, source_port=41723) as c2:
        assert_both_ways(c1.wait_ppp_up(10))
        assert_both_ways(c2.wait_ppp_up(10))
        calls = wait_server_calls(server, 2)
        for call in calls:
            assert_both_ways(call)
        for client in (c1, c2):  # each chose the forced call ID
            assert any(f"(call ID {0x4242}," in line for line in client.log()), client.log()
        gre = {e["orig"]["src"]: e for e in nat.conntrack() if e["proto"] == "gre"}
        assert set(gre) == {"10.0.0.2", "10.0.0.3"}, nat.conntrack_lines()
        assert {e["orig"]["srckey"] for e in gre.values()} == {"0x4242"}
        # The helper remapped the colliding call IDs apart (to the post-NAT source ports).
        assert len({e["reply"]["dstkey"] for e in gre.values()}) == 2, gre


def test_shim_forces_call_id_and_port_on_the_wire(direct, tmp_path):
    require(have("dumpcap") and have("tshark"), "dumpcap/tshark are not installed")
    client_ns, server_ns = direct
    pcap = tmp_path / "ctrl.pcapng"
    capture = server_ns.popen(["dumpcap", "-q", "-i", "eth0", "-f", "tcp port 1723",
                               "-w", str(pcap)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    try:
        wait_for(pcap.exists, 10, "dumpcap to start")
        time.sleep(2.0)  # dumpcap writes the file before capturing starts
        with PptpServer(server_ns, "10.1.0.1", tmp_path / "srv"), \
                PptpClient(client_ns, "10.1.0.1", "10.1.0.2", tmp_path / "cli",
                           call_id=0x1234, source_port=40123) as client:
            client.wait_ppp_up(10)
            time.sleep(0.3)
    finally:
        capture.terminate()
        capture.wait(10)
    rows = tshark_fields(pcap, "pptp.control_message_type == 7",
                         "tcp.srcport", "pptp.call_id")
    assert rows == [["40123", "0x1234"]] or rows == [["40123", str(0x1234)]], rows


def tshark_fields(pcap: Path, display_filter: str, *fields: str) -> list[list[str]]:
    args = ["tshark", "-r", str(pcap), "-Y", display_filter, "-T", "fields"]
    for field in fields:
        args += ["-e", field]
    out = run(args).stdout
    return [line.split("\t") for line in out.splitlines() if line.strip()]
