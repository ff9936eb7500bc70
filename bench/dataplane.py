"""GRE data-plane throughput: ryu-pptp-alg's switch paths against plain OVS and Linux NAT.

A C generator (``dataplane_gen.c``, built with gcc at run time) blasts enhanced GRE v1
packets over AF_PACKET with sendmmsg for a fixed time; the destination namespace counts
(and drops) only the test flow with an iptables raw-table rule. Cases, interleaved per round:

  a     two namespaces on a userspace (netdev) OVS bridge, flow in_port=1 -> output:2
  a_rw  same bridge, the ALG's gre_outward actions in a two-table pipeline (a control)
  b     ryu-pptp-alg fast path: client -> server GRE through the pair's gre_outward flow
  c     ryu-pptp-alg slow path: server -> client GRE of a shared key, via the controller
  d     the Linux reference NAT (MASQUERADE + CT --helper pptp): client -> server GRE

Calls are set up with the scapy PNS and the mini PAC of the test bed. Run as root::

    .venv/bin/python bench/dataplane.py --quick
    .venv/bin/python bench/dataplane.py --json out.json --markdown out.md
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import secrets
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import report  # noqa: E402

from ryu_pptp_alg.testbed import ovs  # noqa: E402
from ryu_pptp_alg.testbed.controller import Controller  # noqa: E402
from ryu_pptp_alg.testbed.linux_nat import LinuxNat  # noqa: E402
from ryu_pptp_alg.testbed.netns import Namespace  # noqa: E402
from ryu_pptp_alg.testbed.proc import HarnessError, run, wait_for  # noqa: E402

GEN_SOURCE = Path(__file__).with_name("dataplane_gen.c")
SERVER_IP = "198.51.100.10"
CASE_ORDER = ("a", "a_rw", "b", "c", "d")
TITLES = {
    "a": "OVS netdev L2 forward (limit)",
    "a_rw": "OVS netdev, ALG-like rewrite flow",
    "b": "ALG fast path (gre_outward)",
    "c": "ALG slow path (controller)",
    "d": "Linux NAT + pptp helper",
}
RATIOS = (("b/a", "b", "a"), ("c/b", "c", "b"), ("b/d", "b", "d"), ("b/a_rw", "b", "a_rw"))


# ---------------------------------------------------------------- small helpers


def mac_of(ns: Namespace, dev: str) -> str:
    return json.loads(ns.run("ip", "-j", "link", "show", dev).stdout)[0]["address"]


def neighbour_mac(ns: Namespace, ip: str) -> str:
    """The MAC ``ns`` resolved for ``ip`` (ARP done during call setup)."""
    def lookup() -> str | None:
        entries = json.loads(ns.run("ip", "-j", "neigh", "show", ip).stdout or "[]")
        macs = [e.get("lladdr") for e in entries if e.get("lladdr")]
        if not macs:  # nudge the kernel to resolve it
            ns.run("ping", "-c1", "-W1", ip, check=False, timeout=5)
        return macs[0] if macs else None
    return wait_for(lookup, 5, f"a neighbour entry for {ip} in {ns.name}", interval=0.2)


def build_generator(workdir: Path) -> Path:
    binary = workdir / "dataplane_gen"
    run(["gcc", "-O2", "-Wall", "-o", str(binary), str(GEN_SOURCE)], timeout=60)
    return binary


@dataclass
class Counter:
    """An iptables raw PREROUTING rule in ``ns``: counts and drops one GRE flow early
    (before conntrack and routing, so the receiver sends nothing back)."""

    ns: Namespace
    src: str
    dst: str

    def _rule(self) -> list[str]:
        return ["-p", "gre", "-s", f"{self.src}/32", "-d", f"{self.dst}/32", "-j", "DROP"]

    def install(self) -> Counter:
        self.ns.run("iptables", "-t", "raw", "-I", "PREROUTING", "1", *self._rule())
        return self

    def read(self) -> int:
        out = self.ns.run("iptables", "-t", "raw", "-L", "PREROUTING", "1", "-v", "-x",
                          "-n").stdout.split()
        if not out or not out[0].isdigit():
            raise HarnessError(f"no iptables counter in {self.ns.name}: {out}")
        return int(out[0])

    def settle(self, limit: float) -> int:
        """The count once it stops growing (queued packets delivered), within ``limit`` s."""
        last, deadline = self.read(), time.monotonic() + limit
        while time.monotonic() < deadline:
            time.sleep(0.2)
            now = self.read()
            if now == last:
                return now
            last = now
        return last


@dataclass
class Case:
    """One way through: who sends what, who counts it, and an optional switch check."""

    name: str
    sender: Namespace
    src_mac: str
    dst_mac: str
    src_ip: str
    dst_ip: str
    call_id: int
    counter: Counter
    rate: float = 0.0  # offered packets per second; 0: as fast as the generator goes
    drain: float = 1.0  # seconds to wait for queued packets after the generator stops
    max_seconds: float = 30.0  # cap on the blast (the slow path queues what it cannot take)
    check: Callable[[], int] | None = None  # packets the expected switch path counted
    notes: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- topologies


def netdev_bridge(stack: ExitStack, name: str) -> ovs.Bridge:
    """A userspace bridge with no controller (fail-mode secure: only our flows)."""
    ovs.ensure_running()
    bridge = ovs.Bridge(name, 0, 0)
    stack.callback(bridge.destroy)
    ovs.vsctl("--may-exist", "add-br", name, "--", "set", "bridge", name,
              "datapath_type=netdev", "protocols=OpenFlow13", "fail-mode=secure")
    return bridge


def host(stack: ExitStack, name: str) -> Namespace:
    ns = Namespace(name)
    stack.callback(ns.delete)
    return ns.create()


def flow_packets(bridge: str, *needles: str) -> int:
    total = 0
    for line in ovs.ofctl("dump-flows", bridge).splitlines():
        if all(n in line for n in needles):
            total += int(line.split("n_packets=")[1].split(",")[0])
    return total


def setup_plain(stack: ExitStack, tag: str) -> list[Case]:
    """(a) and (a_rw): one netdev bridge, two namespace pairs."""
    br = f"dp{tag}a"
    bridge = netdev_bridge(stack, br)
    cases = []
    for name, first in (("a", 1), ("a_rw", 3)):
        src, dst = host(stack, f"dp{tag}{first}"), host(stack, f"dp{tag}{first + 1}")
        src_ip, dst_ip = f"10.9.{first}.1", f"10.9.{first}.2"
        src.attach(bridge, first, f"{src_ip}/24")
        dst.attach(bridge, first + 1, f"{dst_ip}/24")
        dst_mac = mac_of(dst, "eth0")
        if name == "a":
            # in_port -> output; the GRE-only twin just lets us count the test flow alone
            for prio, extra in ((10, ""), (20, "ip,nw_proto=47,")):
                ovs.ofctl("add-flow", br, f"table=0,priority={prio},in_port={first},{extra}"
                          f"actions=output:{first + 1}")
            check = lambda br=br: flow_packets(br, "priority=20")  # noqa: E731
        else:  # the same actions as the ALG's gre_outward, behind a goto like table 0's
            ovs.ofctl("add-flow", br, f"table=0,priority=1000,in_port={first},ip,nw_proto=47,"
                      f"actions=goto_table:1")
            ovs.ofctl("add-flow", br, f"table=1,priority=3000,ip,nw_proto=47,nw_src={src_ip},"
                      f"nw_dst={dst_ip},actions=set_field:0e:00:00:00:0d:a1->eth_src,"
                      f"set_field:{dst_mac}->eth_dst,set_field:10.9.{first}.3->ip_src,"
                      f"dec_ttl,output:{first + 1}")
            check = lambda br=br, s=src_ip: flow_packets(br, "table=1", f"nw_src={s}")  # noqa: E731
        counted_src = src_ip if name == "a" else f"10.9.{first}.3"
        counter = Counter(dst, counted_src, dst_ip).install()
        cases.append(Case(name, src, mac_of(src, "eth0"), dst_mac, src_ip, dst_ip, 0x80,
                          counter, check=check))
    return cases


def start_pac(stack: ExitStack, server: Namespace, log: Path) -> None:
    pac = server.popen([sys.executable, "-m", "ryu_pptp_alg.testbed.mini_pac", "--out",
                        str(log), "--seconds", "900"], stdout=subprocess.PIPE, text=True,
                       cwd=ROOT)
    stack.callback(pac.wait, 10)
    stack.callback(pac.kill)
    line = pac.stdout.readline().strip() if pac.stdout else ""
    if line != "listening":
        raise HarnessError(f"mini PAC did not start: {line!r}")


def pptp_client(ns: Namespace, local: str, server: str, call_id: int, sport: int) -> None:
    """One outgoing call by the scapy PNS; the control connection is left up."""
    ns.run("iptables", "-A", "OUTPUT", "-p", "tcp", "--tcp-flags", "RST", "RST", "-j", "DROP")
    out = ns.run(sys.executable, "-m", "ryu_pptp_alg.testbed.scapy_pns", "--local", local,
                 "--server", server, "--call-ids", str(call_id), "--sport", str(sport),
                 "--keep-open", timeout=60).stdout
    replies = json.loads(out.splitlines()[-1])["replies"]
    if [r["type"] for r in replies] != ["StartControlConnectionReply", "OutgoingCallReply"]:
        raise HarnessError(f"call setup from {local} failed: {replies}")


def setup_alg(stack: ExitStack, tag: str, workdir: Path) -> tuple[list[Case], Controller]:
    """(b) one client, one server; (c) two clients sharing one public address."""
    gw_b, gw_c = 0xDB, 0xDC
    macs = {gw_b: "0e:00:00:00:0d:b1", gw_c: "0e:00:00:00:0d:c1"}
    public = {gw_b: "203.0.113.1", gw_c: "203.0.113.2"}
    config = {"gateways": [{"dpid": dpid, "inside_ports": [1, 2], "outside_ports": [10],
                            "inside_address": "10.0.0.1/24", "public_addresses": [public[dpid]],
                            "gateway_mac": macs[dpid], "name": f"bench-{dpid:x}"}
                           for dpid in (gw_b, gw_c)],
              "timeouts": {"gre_idle": 3600, "control_idle": 3600}}
    controller = Controller(config, workdir / "ctl")
    stack.callback(controller.stop)
    controller.start()
    bridges, servers, clients = {}, {}, {}
    for dpid, letter in ((gw_b, "b"), (gw_c, "c")):
        bridge = ovs.Bridge(f"dp{tag}{letter}", dpid, controller.of_port)
        stack.callback(bridge.destroy)
        bridges[dpid] = bridge.create()
        count = 1 if dpid == gw_b else 2
        for port in range(1, count + 1):
            ns = clients[dpid, port] = host(stack, f"dp{tag}{letter}{port}")
            ns.attach(bridge, port, f"10.0.0.1{port}/24", gateway="10.0.0.1")
        srv = servers[dpid] = host(stack, f"dp{tag}{letter}s")
        srv.attach(bridge, 10, f"{SERVER_IP}/24")
        srv.run("ip", "route", "add", "203.0.113.0/24", "dev", "eth0")
        controller.wait_connected(dpid)
        start_pac(stack, srv, workdir / f"pac-{letter}.jsonl")
        for port in range(1, count + 1):  # both call with ID 7: the second is translated
            pptp_client(clients[dpid, port], f"10.0.0.1{port}", SERVER_IP, 7, 42000 + port)

    def calls(dpid: int) -> dict[str, dict[str, Any]]:
        return {s["client"].split(":")[0]: c
                for s in controller.get(f"/pptp/sessions?dpid={dpid}")["sessions"]
                for c in s["calls"]}

    b_call = calls(gw_b)["10.0.0.11"]
    c_call = calls(gw_c)["10.0.0.12"]
    client_b, server_c = clients[gw_b, 1], servers[gw_c]
    case_b = Case(
        "b", client_b, mac_of(client_b, "eth0"), neighbour_mac(client_b, "10.0.0.1"),
        "10.0.0.11", SERVER_IP, b_call["server_call_id"],
        Counter(servers[gw_b], public[gw_b], SERVER_IP).install(),
        check=lambda: flow_packets(bridges[gw_b].name, "table=1", "priority=3000",
                                   "nw_src=10.0.0.11"),
        notes={"call": b_call})

    def via_controller() -> int:
        (gateway,) = [g for g in controller.get("/pptp/gateways")["gateways"]
                      if g["dpid"] == gw_c]
        return int(gateway["counters"].get("gre_via_controller", 0))

    case_c = Case(
        "c", server_c, mac_of(server_c, "eth0"), neighbour_mac(server_c, public[gw_c]),
        SERVER_IP, public[gw_c], c_call["public_call_id"],
        Counter(clients[gw_c, 2], SERVER_IP, "10.0.0.12").install(),
        drain=10.0, max_seconds=2.0, check=via_controller, notes={"call": c_call})
    return [case_b, case_c], controller


def setup_linux(stack: ExitStack, tag: str, workdir: Path) -> Case:
    """(d) a call through the Linux reference NAT, then client -> server GRE."""
    nat = LinuxNat(f"dp{tag}r")
    stack.callback(nat.delete)
    nat.create()
    client, server = host(stack, f"dp{tag}dc"), host(stack, f"dp{tag}ds")
    ports = [nat.add_inside(client, "10.0.0.11/24"), nat.add_outside(server, f"{SERVER_IP}/24")]
    # The scapy PNS reads raw TCP, and the helper's NAT mangles control messages: no
    # offloaded (partial) checksums anywhere on the way. GRE does not care.
    for ns, devs in ((client, ["eth0"]), (server, ["eth0"]), (nat.router, [*ports, "lan", "wan"])):
        for dev in devs:
            ns.run("ethtool", "-K", dev, "tx", "off", check=False)
    start_pac(stack, server, workdir / "pac-d.jsonl")
    pptp_client(client, "10.0.0.11", SERVER_IP, 7, 42000)
    server_call_id = 0x80  # the mini PAC's first call ID
    return Case("d", client, mac_of(client, "eth0"), neighbour_mac(client, nat.lan_ip),
                "10.0.0.11", SERVER_IP, server_call_id,
                Counter(server, nat.wan_ip, SERVER_IP).install())


# ---------------------------------------------------------------- measuring


def measure(case: Case, gen: Path, seconds: float, size: int,
            pin: str = "") -> dict[str, Any]:
    """One blast. rx_pps: the receiver's steady rate, from two counter readings inside
    the window (after a warm-up, before the end); loss: after the queues have drained."""
    seconds = min(seconds, case.max_seconds)
    before = case.counter.read()
    path_before = case.check() if case.check else None
    taskset = ["taskset", "-c", pin] if pin else []
    proc = case.sender.popen([*taskset, str(gen), "eth0", case.src_mac, case.dst_mac, case.src_ip,
                              case.dst_ip, str(case.call_id), str(size), str(seconds),
                              str(case.rate)], stdout=subprocess.PIPE, text=True)
    try:
        t0 = time.monotonic()
        warm = min(0.5, seconds / 4)
        time.sleep(warm)
        t1, c1 = time.monotonic(), case.counter.read()
        time.sleep(max(0.05, seconds - warm - 0.15 - (time.monotonic() - t0)))
        t2, c2 = time.monotonic(), case.counter.read()
        out, _ = proc.communicate(timeout=seconds + 30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    gen_result = json.loads(out.splitlines()[-1])
    total = case.counter.settle(case.drain) - before
    sent, elapsed = gen_result["sent"], gen_result["elapsed"]
    row = {"case": case.name, "sent": sent, "send_errors": gen_result["send_errors"],
           "elapsed": round(elapsed, 4), "tx_pps": round(sent / elapsed),
           "rx_pps": round((c2 - c1) / (t2 - t1)), "received": total,
           "loss": round(1 - total / sent, 4) if sent else None,
           # received about all that was offered: the offered rate, not the path, was the cap
           "offered_limited": bool(case.rate) and (c2 - c1) / (t2 - t1) > 0.9 * case.rate}
    if case.check and path_before is not None:
        # Flow statistics reach OpenFlow with a delay (revalidators): wait until stable.
        last, deadline = case.check(), time.monotonic() + 3
        while time.monotonic() < deadline:
            time.sleep(0.3)
            now = case.check()
            if now == last:
                break
            last = now
        row["path_packets"] = last - path_before
    return row


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def analyse(rows: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    by_case = {n: [r for r in rows if r["case"] == n] for n in names}
    cases = {n: {"rx_pps": summary([r["rx_pps"] for r in rs]),
                 "tx_pps": summary([r["tx_pps"] for r in rs]),
                 "loss": summary([r["loss"] for r in rs if r["loss"] is not None] or [0.0]),
                 # rounds where the expected switch path (pair flow / controller) counted
                 # exactly what the receiver got
                 "path_verified": sum(r.get("path_packets") == r["received"] for r in rs)
                 if any("path_packets" in r for r in rs) else None}
             for n, rs in by_case.items() if rs}
    ratios = {}
    for label, top, bottom in RATIOS:
        if top in by_case and bottom in by_case:
            per_round = [t["rx_pps"] / b["rx_pps"] for t, b in
                         zip(by_case[top], by_case[bottom], strict=True) if b["rx_pps"]]
            if per_round:
                ratios[label] = {**summary(per_round), "rounds": per_round}
    return {"cases": cases, "ratios": ratios}


def cpu_busy(seconds: float) -> float:
    """Fraction of all CPUs busy over ``seconds`` (everyone's work, from /proc/stat)."""
    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return fields[3] + fields[4], sum(fields)  # idle + iowait, total
    idle0, total0 = sample()
    time.sleep(seconds)
    idle1, total1 = sample()
    return round(1 - (idle1 - idle0) / max(1, total1 - total0), 3)


def datapath_flows(tag: str) -> list[str]:
    """The userspace datapath's megaflows on our ports (what the packets really hit)."""
    out = run(["ovs-appctl", "dpctl/dump-flows", "-m", "netdev@ovs-netdev"],
              check=False).stdout
    return [line for line in out.splitlines() if f"dp{tag}" in line and "0x0800" in line]


def table(result: dict[str, Any]) -> str:
    lines = [f"{'case':5} {'what':34} {'rx pps med':>11} {'min':>9} {'max':>9} "
             f"{'tx pps med':>11} {'loss med':>8}"]
    for name, c in result["analysis"]["cases"].items():
        rx, tx, loss = c["rx_pps"], c["tx_pps"], c["loss"]
        lines.append(f"{name:5} {TITLES[name]:34} {rx['median']:>11,.0f} {rx['min']:>9,.0f} "
                     f"{rx['max']:>9,.0f} {tx['median']:>11,.0f} {loss['median']:>8.1%}")
    lines.append("")
    for label, r in result["analysis"]["ratios"].items():
        lines.append(f"{label:7} median {r['median']:.3f}  (min {r['min']:.3f}, "
                     f"max {r['max']:.3f}, {len(r['rounds'])} rounds)")
    return "\n".join(lines)


def markdown(result: dict[str, Any]) -> str:
    m, a = result["machine"], result["analysis"]
    rate = result["params"]["rate"]
    capped = f"offered at {rate:,.0f} pps" if rate else "as fast as the generator goes"
    out = ["## Data-plane throughput (GRE packets per second)", "",
           f"- command: `{result['command']}`",
           f"- date: {result['date']}",
           f"- machine: {m['nproc']} CPUs, {m['cpu']}, kernel {m['kernel']}, {m['ovs']}, "
           f"load average before the run {m['loadavg']}, CPU busy before our traffic "
           f"{result['notes']['background_cpu_busy']:.0%}",
           f"- {result['params']['repeat']} rounds of {', '.join(result['params']['cases'])} "
           f"(interleaved), {result['params']['seconds']} s each, PPP payload "
           f"{result['params']['size']} B (frame {result['params']['size'] + 46} B), "
           f"slow path (c) offered at {result['params']['slow_rate'] or 'full'} pps for at most "
           f"2 s; the others {capped}",
           "", "| case | path | rx pps median | min | max | tx pps median | loss median | "
           "path check |", "|---|---|---:|---:|---:|---:|---:|---|"]
    for name, c in a["cases"].items():
        rx, verified = c["rx_pps"], c["path_verified"]
        check = "-" if verified is None else f"{verified}/{result['params']['repeat']}"
        out.append(f"| {name} | {TITLES[name]} | {rx['median']:,.0f} | {rx['min']:,.0f} | "
                   f"{rx['max']:,.0f} | {c['tx_pps']['median']:,.0f} | "
                   f"{c['loss']['median']:.1%} | {check} |")
    out += ["", "Path check: rounds in which the flow that should carry the packets (a, a_rw: "
            "the test flow; b: the ALG's gre_outward pair flow in table 1; c: the gateway's "
            "gre_via_controller counter) counted exactly what the receiver got."]
    out += ["", "| ratio | median | min | max |", "|---|---:|---:|---:|"]
    out += [f"| {label} | {r['median']:.3f} | {r['min']:.3f} | {r['max']:.3f} |"
            for label, r in a["ratios"].items()]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: 1 round of 1 s")
    p.add_argument("--seconds", type=float, default=3.0, help="per measurement (default 3)")
    p.add_argument("--size", type=int, default=100, help="PPP payload bytes (default 100)")
    p.add_argument("--repeat", type=int, default=5, help="interleaved rounds (default 5)")
    p.add_argument("--slow-rate", type=float, default=25000,
                   help="offered pps for the slow path c (0: full speed; default 25000)")
    p.add_argument("--rate", type=float, default=0,
                   help="offered pps for a, a_rw, b, d (default 0: as fast as possible)")
    p.add_argument("--pin", default="",
                   help="CPU list for the generator (taskset -c), e.g. 1; default: unpinned")
    p.add_argument("--cases", default=",".join(CASE_ORDER),
                   help=f"comma-separated subset of {','.join(CASE_ORDER)}")
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--markdown", type=Path, help="write a Markdown section here")
    args = p.parse_args(argv)
    if args.quick:
        args.seconds, args.repeat = 1.0, 1
    args.seconds = min(max(args.seconds, 0.2), 30.0)
    args.repeat = min(max(args.repeat, 1), 50)
    if not 4 <= args.size <= 1400:
        p.error("--size must be within 4..1400")
    args.cases = [c for c in CASE_ORDER if c in args.cases.split(",")]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("needs root (namespaces, OVS)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind the ExitStack
    tag = secrets.token_hex(2)
    info = report.machine()
    started = time.monotonic()
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="dataplane-") as tmp:
        workdir = Path(tmp)
        gen = build_generator(workdir)
        cases: dict[str, Case] = {}
        if {"a", "a_rw"} & set(args.cases):
            cases.update((c.name, c) for c in setup_plain(stack, tag))
        if {"b", "c"} & set(args.cases):
            alg_cases, _ = setup_alg(stack, tag, workdir)
            cases.update((c.name, c) for c in alg_cases)
        if "d" in args.cases:
            cases["d"] = setup_linux(stack, tag, workdir)
        for case in cases.values():
            case.rate = args.slow_rate if case.name == "c" else args.rate
        names = [n for n in args.cases if n in cases]
        background = cpu_busy(1.0)
        print(f"set up in {time.monotonic() - started:.1f}s; CPU busy without our traffic "
              f"{background:.0%}; measuring {names}, "
              f"{args.repeat} x {args.seconds}s", flush=True)
        rows = []
        for round_ in range(args.repeat):
            for name in names:
                row = measure(cases[name], gen, args.seconds, args.size, args.pin)
                row["round"] = round_
                rows.append(row)
                print(f"  round {round_} {name:5} tx {row['tx_pps']:>10,} pps  rx "
                      f"{row['rx_pps']:>10,} pps  loss {row['loss']:.1%}  path "
                      f"{row.get('path_packets', '-')}", flush=True)
                time.sleep(0.2)
        notes: dict[str, Any] = {n: c.notes for n, c in cases.items() if c.notes}
        notes["datapath_flows"] = datapath_flows(tag)
        notes["background_cpu_busy"] = background
    result = {"command": shlex.join([sys.executable, *sys.argv]),
              "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
              "machine": info,
              "params": {"seconds": args.seconds, "size": args.size, "repeat": args.repeat,
                         "slow_rate": args.slow_rate, "rate": args.rate, "pin": args.pin,
                         "cases": names},
              "rows": rows, "analysis": analyse(rows, names), "notes": notes,
              "wall_seconds": round(time.monotonic() - started, 1)}
    print()
    print(table(result))
    print(f"\nwall time {result['wall_seconds']}s")
    report.save(result, args.json, args.markdown, markdown)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
