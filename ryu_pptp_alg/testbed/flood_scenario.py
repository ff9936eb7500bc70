"""Issue 13, hostile and overloaded: a legitimate PPTP call set up while a flood runs.

One network (:class:`FloodNet`), built around the ALG (:func:`build_alg`, outbound or
inbound through a port forward; the outside hosts share one uplink port, as behind a
real uplink) or around the Linux reference NAT (:func:`build_linux`):

    old  - a client whose call is up and carrying PPP before the flood starts
    new  - a client that starts its call while the flood runs
    srv  - the pptpd both call (outside; inside behind the forward when inbound)
    fin  - a flooder on an inside port;  fout - a flooder on an outside port

:func:`run_case` runs one :class:`FloodCase` (SYN to TCP/1723, junk GRE to a public
address, junk ARP for the gateway) and returns an :class:`Outcome` with the figures:
time from starting the new call to its first LCP echo reply, the old call's echo replies
missed during the flood (both ends), what the flooder sent, the gateway's answers to the
new client's ARP, and (ALG) the controller's control connections, RSS, CPU and REST
responsiveness, or (Linux) the conntrack entries. :func:`judge` turns an outcome into
failure lines against the issue's criteria. The tests and ``bench/flood.py`` share it.

Addresses: inside 10.0.0.0/24 (gateway .1, old .10, new .11, inside flooder .66,
spoofed sources 10.0.0.128/25); ALG public 203.0.113.1-3; outside 198.51.100.0/24
(server .10) and 192.0.2.0/24 (outside clients .30/.31, outside flooder .66).
"""

from __future__ import annotations

import contextlib
import threading
import time
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ryu_pptp_alg.testbed import ovs
from ryu_pptp_alg.testbed.arp_probe import ArpProber, ArpReport
from ryu_pptp_alg.testbed.controller import Controller
from ryu_pptp_alg.testbed.flood import Flooder, FloodResult, neighbour_mac
from ryu_pptp_alg.testbed.linux_nat import LinuxNat
from ryu_pptp_alg.testbed.monitor import ControllerSampler, Window, process_usage
from ryu_pptp_alg.testbed.netns import Namespace
from ryu_pptp_alg.testbed.ppp_standin import EchoReport, echo_report
from ryu_pptp_alg.testbed.pptp_peers import PptpClient, PptpServer
from ryu_pptp_alg.testbed.proc import HarnessError, run, wait_for
from ryu_pptp_alg.testbed.segment import Segment

DPID = 0xF1
INSIDE_GW = "10.0.0.1"
PUBLICS = ("203.0.113.1", "203.0.113.2", "203.0.113.3")
OUTSIDE_SERVER = "198.51.100.10"
INSIDE_SERVER = "10.0.0.10"
SPOOF_INSIDE = "10.0.0.128/25"
DEFAULT_CONNECTION_CAP = 4096  # when the gateway reports no limits.max_connections
DEFAULT_RSS_GROWTH_MIB = 64  # when the gateway reports no memory limit

# Pass criteria (issue 13).
PPP_WITHIN = 5.0  # the new call's PPP link is up this long after it was started
MAX_ECHOES_MISSED = 1  # per end of the call already up, during the flood
# The gateway keeps answering the new client's ARP: never this long without an answer
# to its probes (one every 0.5 s, 1 s to answer): a host's kernel gives up after 3
# requests 1 s apart.
MAX_ARP_SILENCE = 3.0


@dataclass
class Host:
    ns: Namespace
    ip: str


@dataclass
class FloodNet:
    kind: str  # "alg" or "linux"
    direction: str  # "outbound" (server outside) or "inbound" (server behind a forward)
    hosts: dict[str, Host]  # old, new, srv, fin, fout
    dial: str  # the address clients call
    public: str  # where junk GRE goes (a public address of the gateway)
    arp_target: dict[str, str]  # host name -> the gateway address that host ARPs for
    workdir: Path
    stack: ExitStack
    controller: Controller | None = None
    bridge: ovs.Bridge | None = None
    nat: LinuxNat | None = None
    ovs_ports: dict[str, str] = field(default_factory=dict)  # host -> its OVS port's name
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{'ryu-pptp-alg' if self.kind == 'alg' else 'Linux NAT'} ({self.direction})"


@dataclass(frozen=True)
class FloodCase:
    name: str
    mode: str  # syn, gre, arp
    flooder: str  # fin or fout
    target: str  # dial, public or gateway (the flooder's side's gateway address)
    spoof: str | None = None
    arp_op: str = "mixed"
    direction: str = "outbound"

    def describe(self, rate: float, seconds: float) -> str:
        what = {"syn": "TCP SYNs to port 1723", "gre": "junk GRE (random call IDs)",
                "arp": f"junk ARP ({self.arp_op}, random sender addresses)"}[self.mode]
        side = "inside" if self.flooder == "fin" else "outside"
        spoof = f", sources spoofed from {self.spoof}" if self.spoof else ""
        return f"{rate:,.0f}/s {what} from an {side} host{spoof} for {seconds:g}s"


CASES = {case.name: case for case in (
    FloodCase("syn", "syn", "fin", "dial"),
    FloodCase("syn-spoofed", "syn", "fin", "dial", spoof=SPOOF_INSIDE),
    FloodCase("gre", "gre", "fout", "public"),
    FloodCase("arp", "arp", "fin", "gateway", spoof=SPOOF_INSIDE),
    FloodCase("syn-forward", "syn", "fout", "dial", direction="inbound"),
)}


# --- networks ---------------------------------------------------------------------------------

def alg_config(direction: str, extra: dict[str, Any] | None = None,
               outside_ports: tuple[int, ...] = (10,)) -> dict[str, Any]:
    if direction == "outbound":
        gateway = {"dpid": DPID, "inside_ports": [1, 2, 3], "outside_ports": list(outside_ports),
                   "inside_address": f"{INSIDE_GW}/24", "public_addresses": list(PUBLICS),
                   "switch_profile": "ovs"}
    else:
        gateway = {"dpid": DPID, "inside_ports": [1, 3], "outside_ports": list(outside_ports),
                   "inside_address": f"{INSIDE_GW}/24", "public_addresses": [PUBLICS[0]],
                   "port_forwards": [{"public": PUBLICS[0], "inside": INSIDE_SERVER}],
                   "switch_profile": "ovs"}
    return {"gateways": [gateway], "timeouts": {"stats_interval": 1}, **(extra or {})}


def build_alg(stack: ExitStack, tag: str, workdir: Path, direction: str = "outbound",
              config_extra: dict[str, Any] | None = None,
              shared_uplink: bool = True) -> FloodNet:
    """The ALG on an OVS userspace bridge ``pfl<tag>``; namespaces ``fl<tag><host>``.

    ``shared_uplink``: every outside host reaches the switch through one port (10), a
    Linux bridge in namespace ``fl<tag>up`` (:class:`Segment`), as behind a real uplink;
    otherwise each outside host has a port of its own (10, 11, 12).
    """
    outside_ports = (10,) if shared_uplink else (10, 11, 12)
    controller = stack.enter_context(Controller(
        alg_config(direction, config_extra, outside_ports), workdir / "ctl"))
    bridge = stack.enter_context(ovs.Bridge(f"pfl{tag}", DPID, controller.of_port))
    hosts: dict[str, Host] = {}
    ports: dict[str, str] = {}
    segment = None
    if shared_uplink:
        segment = stack.enter_context(Segment(f"fl{tag}up"))
        ports["outside"] = segment.uplink(bridge, 10)

    def host(name: str, port: int, ip: str, inside: bool) -> None:
        ns = stack.enter_context(Namespace(f"fl{tag}{name}"))
        if inside or segment is None:
            ports[name] = ns.attach(bridge, port, f"{ip}/24",
                                    gateway=INSIDE_GW if inside else None)
        else:
            segment.add(ns, f"{ip}/24")
            ports[name] = ports["outside"]
        if not inside:
            ns.run("ip", "route", "add", "203.0.113.0/24", "dev", "eth0")
        hosts[name] = Host(ns, ip)

    if direction == "outbound":
        host("old", 1, "10.0.0.10", True)
        host("new", 2, "10.0.0.11", True)
        host("fin", 3, "10.0.0.66", True)
        host("srv", 10, OUTSIDE_SERVER, False)
        host("fout", 11, "192.0.2.66", False)
        dial = OUTSIDE_SERVER
        targets = {"old": INSIDE_GW, "new": INSIDE_GW, "fin": INSIDE_GW, "fout": PUBLICS[0]}
    else:
        host("srv", 1, INSIDE_SERVER, True)
        host("fin", 3, "10.0.0.66", True)
        host("old", 10, "192.0.2.30", False)
        host("new", 11, "192.0.2.31", False)
        host("fout", 12, "192.0.2.66", False)
        dial = PUBLICS[0]
        targets = {"old": PUBLICS[0], "new": PUBLICS[0], "fin": INSIDE_GW, "fout": PUBLICS[0]}
    controller.wait_connected(DPID)
    return FloodNet("alg", direction, hosts, dial, PUBLICS[0], targets, workdir, stack,
                    controller=controller, bridge=bridge, ovs_ports=ports)


def build_linux(stack: ExitStack, tag: str, workdir: Path) -> FloodNet:
    """The Linux reference NAT (router ``fl<tag>rt``), outbound only."""
    nat = stack.enter_context(LinuxNat(f"fl{tag}rt", lan_address=f"{INSIDE_GW}/24",
                                       wan_address="198.51.100.1/24"))
    hosts: dict[str, Host] = {}
    for name, ip, inside in (("old", "10.0.0.10", True), ("new", "10.0.0.11", True),
                             ("fin", "10.0.0.66", True), ("srv", OUTSIDE_SERVER, False),
                             ("fout", "198.51.100.66", False)):
        ns = stack.enter_context(Namespace(f"fl{tag}{name}"))
        if inside:
            nat.add_inside(ns, f"{ip}/24")
        else:
            nat.add_outside(ns, f"{ip}/24")
        hosts[name] = Host(ns, ip)
    targets = {"old": INSIDE_GW, "new": INSIDE_GW, "fin": INSIDE_GW, "fout": nat.wan_ip}
    return FloodNet("linux", "outbound", hosts, OUTSIDE_SERVER, nat.wan_ip, targets, workdir,
                    stack, nat=nat)


def start_server(net: FloodNet) -> PptpServer:
    srv = net.hosts["srv"]
    return net.stack.enter_context(PptpServer(srv.ns, srv.ip, net.workdir / "pptpd",
                                              debug=False))


# --- one legitimate call ---------------------------------------------------------------------

def first_reply(status: dict[str, Any]) -> float | None:
    """Monotonic time of the first LCP echo reply in a stand-in's status."""
    replies = [float(r) for _sent, _ident, r in status.get("echo_log", []) if r is not None]
    return min(replies) if replies else None


@dataclass
class CallTiming:
    started: float  # monotonic
    ppp_up: float | None  # first echo reply (monotonic), None: not within the wait
    client: PptpClient

    @property
    def seconds(self) -> float | None:
        return None if self.ppp_up is None else self.ppp_up - self.started

    def failure_detail(self) -> str:
        """What the client saw, for a call that did not come up."""
        client = self.client
        code = client.pptp.poll() if client.pptp is not None else None
        log = [line for line in client.log() if line.strip()][-6:]
        stats = client.stats()
        return (f"pptp exit code {code}, stand-in state {stats.get('state', '?')} "
                f"(LCP conf-req sent {stats.get('counters', {}).get('lcp_conf_req_sent', 0)}, "
                f"frames received {stats.get('counters', {}).get('frames_received', 0)}); "
                f"pptp log tail: {' | '.join(log) or '(empty)'}")


def start_call(net: FloodNet, host: str, workdir: Path) -> CallTiming:
    h = net.hosts[host]
    started = time.monotonic()
    client = PptpClient(h.ns, net.dial, h.ip, workdir)
    net.stack.callback(client.stop)
    client.start()
    return CallTiming(started, None, client)


def wait_call(timing: CallTiming, deadline: float, poll: float = 0.05) -> CallTiming:
    """Poll until the call's PPP is up (first echo reply) or ``deadline`` (monotonic)."""
    while timing.ppp_up is None:
        timing.ppp_up = first_reply(timing.client.stats())
        if timing.ppp_up is not None or time.monotonic() > deadline:
            break
        time.sleep(poll)
    return timing


def legit_call(net: FloodNet, host: str, workdir: Path, timeout: float) -> CallTiming:
    timing = start_call(net, host, workdir)
    return wait_call(timing, timing.started + timeout)


# --- the Linux NAT's conntrack table ---------------------------------------------------------

class ConntrackSampler:
    """Polls the router namespace's nf_conntrack_count."""

    def __init__(self, nat: LinuxNat, interval: float = 0.5) -> None:
        self.nat, self.interval = nat, interval
        self.samples: list[tuple[float, int]] = []
        self._stop = False
        self._thread: Any = None

    def start(self) -> ConntrackSampler:
        def loop() -> None:
            while not self._stop:
                out = self.nat.router.run("cat", "/proc/sys/net/netfilter/nf_conntrack_count",
                                          check=False).stdout.strip()
                if out.isdigit():
                    self.samples.append((time.monotonic(), int(out)))
                time.sleep(self.interval)
        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop = True
        if self._thread is not None:
            self._thread.join(5)

    def max(self, since: float, until: float) -> int | None:
        return max((n for t, n in self.samples if since <= t <= until), default=None)


# --- the case -------------------------------------------------------------------------------

@dataclass
class Outcome:
    net: str
    case: str
    flood_description: str
    flood: FloodResult | None
    flood_started: float
    flood_ended: float
    call: CallTiming | None
    old_client: EchoReport | None
    old_server: EchoReport | None
    arp: ArpReport | None
    controller: Window | None = None
    connection_cap: int | None = None
    cap_note: str = ""
    rss_cap_kib: int | None = None
    rss_note: str = ""
    gateway_after: dict[str, Any] | None = None
    sessions_bytes: int | None = None
    sessions_rows: int | None = None
    conntrack_max: int | None = None
    switch: dict[str, Any] = field(default_factory=dict)
    vswitchd_cpu_share: float | None = None
    controller_build: str = ""
    old_after_ok: bool | None = None  # the old call still answered echoes after the flood
    controller_exit: int | None = None  # the controller's exit status, if it died
    notes: list[str] = field(default_factory=list)
    kind: str = "alg"

    @property
    def time_to_ppp(self) -> float | None:
        return None if self.call is None else self.call.seconds

    def figures(self) -> list[str]:
        """One line per measured figure, for failure messages and reports."""
        lines = [f"network: {self.net}; flood: {self.flood_description}"]
        if self.flood is not None:
            lines.append(f"flooder: {self.flood.describe()}")
        if self.call is not None:
            ttp = self.time_to_ppp
            lines.append("new call: PPP up " + (f"{ttp:.2f}s after starting it"
                                               if ttp is not None else
                                               "NOT within the wait")
                         + f" (started {self.call.started - self.flood_started:+.1f}s into the "
                         f"flood of {self.flood_ended - self.flood_started:.1f}s)")
        for side, report in (("client", self.old_client), ("server", self.old_server)):
            if report is not None:
                lines.append(f"call already up, {side} end, during the flood: "
                             f"{report.describe(self.flood_started)}")
        if self.old_after_ok is not None:
            lines.append("call already up after the flood: "
                         + ("answering echoes" if self.old_after_ok else "SILENT"))
        if self.arp is not None:
            lines.append(f"new client's ARP for its gateway during the flood: "
                         f"{self.arp.describe(self.flood_started)}")
        if self.controller is not None:
            lines.append(f"controller ({self.controller_build or 'build ?'}) during the flood: "
                         f"{self.controller.describe()}")
            if self.controller.errors:
                lines.append(f"REST errors: {'; '.join(self.controller.errors[:3])}")
        if self.connection_cap is not None:
            lines.append(f"connection cap {self.connection_cap}{self.cap_note}")
        if self.rss_cap_kib is not None:
            lines.append(f"memory cap {self.rss_cap_kib / 1024:.0f} MiB RSS{self.rss_note}")
        if self.sessions_bytes is not None:
            lines.append(f"GET /pptp/sessions near the flood's end: {self.sessions_bytes:,} "
                         f"bytes, {self.sessions_rows} rows")
        if self.vswitchd_cpu_share is not None:
            lines.append(f"ovs-vswitchd CPU during the flood: "
                         f"{self.vswitchd_cpu_share * 100:.0f}% of a core")
        if self.switch:
            lines.append("switch: " + ", ".join(f"{k} {v}" for k, v in self.switch.items()))
        if self.gateway_after is not None:
            counters = self.gateway_after.get("counters", {})
            keys = [k for k in sorted(counters) if counters[k] and any(
                word in k for word in ("drop", "limit", "cap", "refus", "control_conn",
                                       "tcp_no", "unanswered", "evict", "meter", "flood",
                                       "arp", "gre_no", "bad"))]
            lines.append("gateway counters after: "
                         + (", ".join(f"{k}={counters[k]}" for k in keys) or "(none of note)"))
        if self.conntrack_max is not None:
            lines.append(f"conntrack entries max during the flood: {self.conntrack_max:,}")
        lines += self.notes
        return lines


def connection_cap(gateway: dict[str, Any] | None) -> tuple[int, str]:
    """The gateway's reported cap on control connections (``limits.max_connections``),
    or the issue's default with a note saying so."""
    limits = (gateway or {}).get("limits")
    if isinstance(limits, dict):
        for key in ("max_connections", "max_control_connections"):
            value = limits.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                return value, f" (limits.{key} from /pptp/gateways)"
    return DEFAULT_CONNECTION_CAP, (" (the default: /pptp/gateways reports no "
                                    "limits.max_connections)")


def rss_cap(gateway: dict[str, Any] | None, before_kib: int | None) -> tuple[int | None, str]:
    """A memory cap from the gateway's ``limits`` (a key naming rss or memory, in bytes,
    KiB or MiB by its suffix), else the RSS before the flood plus the default growth."""
    limits = (gateway or {}).get("limits")
    if isinstance(limits, dict):
        for key, value in limits.items():
            if not isinstance(value, int | float) or isinstance(value, bool):
                continue
            if "rss" in key or "memory" in key:
                scale = (1 / 1024 if key.endswith("bytes") else 1024 if key.endswith(
                    ("mib", "mb")) else 1)
                return int(value * scale), f" (limits.{key} from /pptp/gateways)"
    if before_kib is None:
        return None, ""
    return (before_kib + DEFAULT_RSS_GROWTH_MIB * 1024,
            f" (the default: RSS before the flood {before_kib / 1024:.0f} MiB + "
            f"{DEFAULT_RSS_GROWTH_MIB} MiB; /pptp/gateways reports no memory limit)")


def controller_build(controller: Controller) -> str:
    """Which packet-in path the controller runs, from its log."""
    for line in controller.log().splitlines():
        if "packet-in path:" in line:
            return "packet-in path " + line.split("packet-in path:", 1)[1].strip()
    return ""


def sessions_size(controller: Controller, timeout: float = 10) -> tuple[int | None, int | None]:
    try:
        with urllib.request.urlopen(controller.url + "/pptp/sessions",
                                    timeout=timeout) as response:
            body = response.read()
    except OSError:
        return None, None
    import json
    try:
        rows = len(json.loads(body).get("sessions", []))
    except ValueError:
        rows = None
    return len(body), rows


def switch_figures(net: FloodNet, flooder_host: str) -> dict[str, Any]:
    """What OVS says: the flooder's port statistics and packet-in drops (coverage)."""
    figures: dict[str, Any] = {}
    if net.bridge is None:
        return figures
    port = net.ovs_ports.get(flooder_host)
    if port:
        out = run(["ovs-vsctl", "--timeout=5", "get", "interface", port, "statistics"],
                  check=False).stdout
        stats = dict(item.split("=") for item in out.strip("{}\n ").split(", ") if "=" in item)
        shared = sum(p == port for h, p in net.ovs_ports.items() if h != "outside") > 1
        for key in ("rx_packets", "rx_dropped"):
            if key in stats:
                figures[f"flooder's port{' (shared uplink)' if shared else ''} {key}"] = \
                    int(stats[key])
    drops = net.bridge.socket_drops()
    figures["frames dropped at vswitchd's full port sockets (all ports)"] = \
        sum(drops.values()) if drops else "unknown (ss found no port socket)"
    return figures


def rconn_overflow() -> int | None:
    """OVS's count of OpenFlow messages dropped because a connection's send queue was full
    (packet-ins past ``controller_queue_size``, default 100): host-wide, since vswitchd
    started."""
    counter = run(["ovs-appctl", "coverage/read-counter", "rconn_overflow"], check=False)
    if counter.returncode == 0 and counter.stdout.strip().isdigit():
        return int(counter.stdout)
    return None


def run_case(net: FloodNet, case: FloodCase, seconds: float, rate: float,
             warmup: float = 2.0, call_wait: float = 10.0,
             on_flood: Callable[[Outcome], None] | None = None) -> Outcome:
    """The call already up, the flood, the new call started ``warmup`` s into it.

    The new call is waited for until ``call_wait`` s after the flood ended (so a call that
    only comes up once the flood stops is measured too).
    """
    server = start_server(net)
    old = net.stack.enter_context(PptpClient(net.hosts["old"].ns, net.dial,
                                             net.hosts["old"].ip, net.workdir / "old"))
    old.wait_ppp_up(30)
    wait_for(lambda: any(c.get("last_echo_reply") for c in server.calls()), 15,
             "echo replies on the server end of the call already up")
    target = {"dial": net.dial, "public": net.public,
              "gateway": net.arp_target[case.flooder]}[case.target]
    flooder_ns = net.hosts[case.flooder].ns
    flooder = Flooder(flooder_ns, case.mode, target, rate, seconds, spoof=case.spoof,
                      arp_op=case.arp_op)
    flooder.command()  # resolves the next hop's MAC now, before anything is loaded
    new = net.hosts["new"]
    probe_target = net.arp_target["new"]
    neighbour_mac(new.ns, probe_target)  # the gateway answers before the flood
    total = warmup + seconds + call_wait + 10
    prober = net.stack.enter_context(ArpProber(new.ns, new.ip, probe_target,
                                               seconds=min(600.0, total)))
    sampler = net.stack.enter_context(ControllerSampler(net.controller, DPID)) \
        if net.controller is not None else None
    conntrack = ConntrackSampler(net.nat).start() if net.nat is not None else None
    if conntrack is not None:
        net.stack.callback(conntrack.stop)
    vswitchd = ovs.vswitchd_pid() if net.kind == "alg" else None
    time.sleep(1.5)  # a baseline: RSS before, ARP answered before
    vs_before = process_usage(vswitchd) if vswitchd else None
    overflow_before = rconn_overflow() if net.kind == "alg" else None

    flood_started = time.monotonic()
    flooder.start()
    net.stack.callback(flooder.stop)
    outcome = Outcome(net.label, case.name, case.describe(rate, seconds), None, flood_started,
                      flood_started + seconds, None, None, None, None, kind=net.kind)
    # Near the flood's end, in a thread: the session table's size (the issue saw 12 MB),
    # and ovs-vswitchd's CPU so far.
    vs_mid: list[Any] = [None, 0.0]

    def near_end() -> None:
        vs_mid[:] = [process_usage(vswitchd) if vswitchd else None, time.monotonic()]
        if net.controller is not None and flooder.running():
            outcome.sessions_bytes, outcome.sessions_rows = sessions_size(net.controller)
    timer = threading.Timer(max(0.0, seconds - 1.5), near_end)
    timer.daemon = True
    timer.start()
    net.stack.callback(timer.cancel)
    time.sleep(warmup)
    call = start_call(net, "new", net.workdir / "new")
    outcome.call = call
    wait_call(call, flood_started + seconds)
    if on_flood is not None:
        on_flood(outcome)
    outcome.flood = flooder.wait()
    # By the flooder's own clock (a slow REST answer above may have held us past its end).
    flood_ended = min(time.monotonic(), flood_started + outcome.flood.elapsed + 0.05)
    outcome.flood_ended = flood_ended
    timer.join(15)
    if vs_before is not None and vs_mid[0] is not None:
        outcome.vswitchd_cpu_share = (vs_mid[0].cpu_seconds - vs_before.cpu_seconds) / \
            max(1e-3, vs_mid[1] - flood_started)
    overflow_after = rconn_overflow() if net.kind == "alg" else None
    if overflow_before is not None and overflow_after is not None:
        outcome.switch["OpenFlow messages OVS dropped at full send queues (rconn_overflow, "
                       "host-wide)"] = overflow_after - overflow_before
    wait_call(call, flood_ended + call_wait)
    # Every echo request sent during the flood has had its timeout to be answered, and a
    # few sent after it too.
    time.sleep(max(0.0, flood_ended + 4.5 - time.monotonic()))
    old_status = old.stats()
    server_status = server.calls()[0] if server.calls() else {}
    outcome.old_client = echo_report(old_status, flood_started, flood_ended + 2.1)
    if server_status:
        outcome.old_server = echo_report(server_status, flood_started, flood_ended + 2.1)
    after = echo_report(old_status, max(flood_ended + 0.5, time.monotonic() - 4.0))
    outcome.old_after_ok = None if after.judged == 0 else not after.missing
    if net.controller is not None and net.controller.process is not None:
        outcome.controller_exit = net.controller.process.poll()
    if net.bridge is not None and outcome.old_after_ok is False:
        # For the diagnosis: are the silent call's GRE flows still in the switch?
        old_ip = net.hosts["old"].ip
        with contextlib.suppress(HarnessError):
            table = [line for line in ovs.ofctl("dump-flows", net.bridge.name, "table=1")
                     .splitlines() if "cookie=" in line]
            mine = [line for line in table if f"={old_ip}," in line or f":{old_ip}->" in line]
            outcome.notes.append(f"GRE table after the flood: {len(table)} flows, "
                                 f"{len(mine)} naming {old_ip} (the silent call's client)")
    outcome.arp = prober.report(flood_started, flood_ended)
    if sampler is not None and net.controller is not None:
        window = sampler.window(flood_started, flood_ended + 1.0)
        outcome.controller = window
        gateway = sampler.last_gateway()
        outcome.gateway_after = gateway
        outcome.connection_cap, outcome.cap_note = connection_cap(gateway)
        outcome.rss_cap_kib, outcome.rss_note = rss_cap(gateway, window.rss_before_kib)
        outcome.controller_build = controller_build(net.controller)
        with contextlib.suppress(HarnessError):
            outcome.switch.update(switch_figures(net, case.flooder))
    if conntrack is not None:
        outcome.conntrack_max = conntrack.max(flood_started, flood_ended + 1.0)
    if net.kind == "linux" and outcome.flood.pps < 0.9 * rate:
        outcome.notes.append(
            f"note: the flooder sent {outcome.flood.pps:,.0f}/s of {rate:,.0f}/s: a veth "
            "hands each frame to the router's bridge and netfilter in the sender's own "
            "softirq, so the sender runs at the rate the Linux NAT absorbs (OVS reads its "
            "ports in its own thread and drops what it cannot take)")
    return outcome


def judge(outcome: Outcome) -> list[str]:
    """Failures against the issue's criteria, each with its figures."""
    failures = []
    flood = outcome.flood
    if flood is not None and flood.pps < 0.9 * flood.rate and outcome.kind == "alg":
        failures.append(f"the flood itself fell short: {flood.pps:,.0f}/s of "
                        f"{flood.rate:,.0f}/s offered (a harness problem, not the ALG's)")
    ttp = outcome.time_to_ppp
    if ttp is None:
        detail = outcome.call.failure_detail() if outcome.call is not None else ""
        waited = (outcome.flood_ended - outcome.call.started) if outcome.call else 0
        failures.append(f"the new call's PPP link did not come up at all (waited "
                        f"{waited:.0f}s to the flood's end and 10s beyond; required: within "
                        f"{PPP_WITHIN:g}s); {detail}")
    elif ttp > PPP_WITHIN:
        failures.append(f"the new call's PPP link came up after {ttp:.1f}s (required: within "
                        f"{PPP_WITHIN:g}s)")
    for side, report in (("client", outcome.old_client), ("server", outcome.old_server)):
        if report is None or report.requests == 0:
            failures.append(f"the call already up: no echo history on its {side} end")
        elif len(report.missing) > MAX_ECHOES_MISSED:
            failures.append(f"the call already up lost {len(report.missing)} of "
                            f"{report.judged} LCP echo replies on its {side} end during the "
                            f"flood (allowed: {MAX_ECHOES_MISSED}); longest gap "
                            f"{report.longest_gap:.1f}s")
    arp = outcome.arp
    if arp is not None and arp.probes and arp.longest_silence > MAX_ARP_SILENCE:
        failures.append(f"the gateway left the new client's ARP unanswered for "
                        f"{arp.longest_silence:.1f}s during the flood (allowed: "
                        f"{MAX_ARP_SILENCE:g}s; {arp.answered} of {arp.probes} requests "
                        "answered within 1s)")
    if outcome.controller_exit is not None:
        failures.append(f"the controller exited (status {outcome.controller_exit}) under the "
                        "flood")
    if outcome.old_after_ok is False:
        failures.append("the call already up no longer answers LCP echoes after the flood")
    window = outcome.controller
    if window is not None:
        if window.max_connections is not None and outcome.connection_cap is not None \
                and window.max_connections > outcome.connection_cap:
            failures.append(f"the controller held {window.max_connections:,} control "
                            f"connections (cap {outcome.connection_cap:,}{outcome.cap_note})")
        if window.max_rss_kib is not None and outcome.rss_cap_kib is not None \
                and window.max_rss_kib > outcome.rss_cap_kib:
            failures.append(f"the controller's RSS reached {window.max_rss_kib / 1024:.0f} MiB "
                            f"(cap {outcome.rss_cap_kib / 1024:.0f} MiB{outcome.rss_note})")
        if window.samples and window.rest_failures > window.samples // 2:
            failures.append(f"the controller's REST API failed {window.rest_failures} of "
                            f"{window.samples} polls during the flood, so its connection "
                            "count and state could not be watched")
    return failures
