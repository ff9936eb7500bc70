#!/usr/bin/env python3
"""End to end with the real peers: Outgoing-Call-Request to the first GRE answer.

Three networks side by side, each a pptp-linux client (10.0.0.11) and a PoPToP
server (198.51.100.10, no route to 10.0.0.0/8):
  alg          - through an OVS userspace bridge controlled by ryu-pptp-alg,
                 switch_profile ovs (no barriers);
  alg_openflow - the same with switch_profile openflow (barriers, the reply
                 held for the barrier's answer);
  linux        - through the Linux reference NAT (MASQUERADE + CT --helper pptp).
Each round places one fresh call per network, in rotating order. dumpcap on the
client's interface times, from the client's own point of view, the
Outgoing-Call-Request leaving, the Outgoing-Call-Reply arriving, and the first
GRE packet arriving from the server. Reported per network: median and spread,
and the ratio of each ALG network's median to Linux's.

    sudo .venv/bin/python bench/endtoend.py [--rounds 7] [--json F] [--markdown F]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import machine, markdown_table, save, spread
from ryu_pptp_alg.testbed import ovs
from ryu_pptp_alg.testbed.controller import Controller
from ryu_pptp_alg.testbed.linux_nat import LinuxNat
from ryu_pptp_alg.testbed.netns import Namespace
from ryu_pptp_alg.testbed.pptp_peers import PptpClient, PptpServer
from ryu_pptp_alg.testbed.proc import wait_for

CLIENT_IP = "10.0.0.11"
SERVER_IP = "198.51.100.10"
DPID = 0xBE


def capture_times(pcap: Path) -> dict[str, float]:
    """Times (s) of OCRQ sent, OCRP received and the first GRE from the server."""
    fields = subprocess.run(
        ["tshark", "-r", str(pcap), "-T", "fields", "-E", "separator=,", "-e",
         "frame.time_epoch", "-e", "ip.src", "-e", "ip.proto", "-e",
         "pptp.control_message_type"], capture_output=True, text=True, check=True).stdout
    times: dict[str, float] = {}
    for line in fields.splitlines():
        stamp, src, proto, msg_type = ([*line.split(","), "", "", "", ""])[:4]
        if not stamp:
            continue
        t = float(stamp)
        if "7" in msg_type.split(";") and src == CLIENT_IP:
            times.setdefault("ocrq", t)
        elif "8" in msg_type.split(";") and src != CLIENT_IP:
            times.setdefault("ocrp", t)
        elif proto == "47" and src != CLIENT_IP and "ocrq" in times:
            times.setdefault("first_gre", t)
    return times


def one_call(client_ns: Namespace, workdir: Path) -> dict[str, float]:
    workdir.mkdir(parents=True, exist_ok=True)
    pcap = workdir / "client.pcapng"
    dumpcap = client_ns.popen(["dumpcap", "-q", "-i", "eth0", "-w", str(pcap), "-f",
                               "tcp port 1723 or ip proto 47"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(pcap.exists, 10, "dumpcap to start")
        time.sleep(2.0)  # dumpcap writes the file before capturing starts
        with PptpClient(client_ns, SERVER_IP, CLIENT_IP, workdir / "pptp") as client:
            client.wait_ppp_up(30)
        time.sleep(0.3)
    finally:
        dumpcap.terminate()
        dumpcap.wait(10)
    times = capture_times(pcap)
    return {"ocrq_to_ocrp_ms": (times["ocrp"] - times["ocrq"]) * 1000,
            "ocrq_to_first_gre_ms": (times["first_gre"] - times["ocrq"]) * 1000}


def build_alg(stack: ExitStack, tag: str, workdir: Path, profile: str) -> Namespace:
    letter = "e" if profile == "ovs" else "f"  # interface and namespace names differ
    config = {"gateways": [{"dpid": DPID, "inside_ports": [1], "outside_ports": [2],
                            "inside_address": "10.0.0.1/24",
                            "public_addresses": ["203.0.113.1"],
                            "switch_profile": profile}]}
    controller = stack.enter_context(Controller(config, workdir / f"controller-{profile}"))
    bridge = stack.enter_context(ovs.Bridge(f"pb{letter}{tag}", DPID, controller.of_port))
    client = stack.enter_context(Namespace(f"pb{tag}{letter}c"))
    client.attach(bridge, 1, f"{CLIENT_IP}/24", gateway="10.0.0.1")
    server = stack.enter_context(Namespace(f"pb{tag}{letter}s"))
    server.attach(bridge, 2, f"{SERVER_IP}/24")
    server.run("ip", "route", "add", "203.0.113.0/24", "dev", "eth0")
    controller.wait_connected(DPID)
    stack.enter_context(PptpServer(server, SERVER_IP, workdir / f"pptpd-{profile}",
                                   debug=False))
    return client


def build_linux(stack: ExitStack, tag: str, workdir: Path) -> Namespace:
    nat = stack.enter_context(LinuxNat(f"pb{tag}rt"))
    client = stack.enter_context(Namespace(f"pb{tag}lc"))
    nat.add_inside(client, f"{CLIENT_IP}/24")
    server = stack.enter_context(Namespace(f"pb{tag}ls"))
    nat.add_outside(server, f"{SERVER_IP}/24")
    stack.enter_context(PptpServer(server, SERVER_IP, workdir / "pptpd-linux", debug=False))
    return client


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    ovs.ensure_running()
    workdir = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    tag = f"{int(time.time()) % 10000:04d}"
    networks = ("alg", "alg_openflow", "linux")
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in networks}
    with ExitStack() as stack:
        clients = {"alg": build_alg(stack, tag, workdir, "ovs"),
                   "alg_openflow": build_alg(stack, tag, workdir, "openflow"),
                   "linux": build_linux(stack, tag, workdir)}
        for name in networks:  # warm-up: ARP caches, first-call costs
            one_call(clients[name], workdir / f"warm-{name}")
        for round_ in range(args.rounds):
            shift = round_ % len(networks)
            for name in networks[shift:] + networks[:shift]:
                samples[name].append(one_call(clients[name], workdir / f"{name}-{round_}"))
    rows, result = [], {"machine": machine(), "rounds": args.rounds, "networks": {}}
    for metric in ("ocrq_to_ocrp_ms", "ocrq_to_first_gre_ms"):
        medians = {}
        for name in networks:
            values = [s[metric] for s in samples[name]]
            medians[name] = statistics.median(values)
            result["networks"].setdefault(name, {})[metric] = {
                "median": medians[name], "spread": spread(values), "samples": values}
            rows.append([metric, name, f"{medians[name]:.2f}", spread(values)])
        for name in networks[:-1]:
            rows.append([metric, f"ratio {name}/linux",
                         f"{medians[name] / medians['linux']:.2f}", ""])
    table = markdown_table(["metric", "network", "median (ms)", "spread (min..max)"], rows)
    print(table)
    command = "sudo .venv/bin/python bench/endtoend.py " + " ".join(sys.argv[1:])
    save(result, args.json, args.markdown, lambda result: (
        f"### End to end with the real peers\n\nCommand: `{command.strip()}`\n\n"
        f"{result['machine']['summary']}\n\n{table}\n"))
    shutil.rmtree(workdir, ignore_errors=True)  # captures and logs: kept only if it failed
    return 0


if __name__ == "__main__":
    sys.exit(main())
