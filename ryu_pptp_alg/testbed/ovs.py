"""Open vSwitch with userspace (netdev) bridges: no kernel module needed."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ryu_pptp_alg.testbed.proc import HarnessError, have, run

OVS_CTL = "/usr/share/openvswitch/scripts/ovs-ctl"


def is_running() -> bool:
    return have("ovs-vsctl") and run(["ovs-vsctl", "--timeout=2", "show"],
                                     check=False).returncode == 0


def ensure_running() -> None:
    """Start ovsdb-server and ovs-vswitchd if they are not running."""
    if is_running():
        return
    if not os.path.exists(OVS_CTL):
        raise HarnessError(f"{OVS_CTL} missing: install openvswitch-switch")
    run([OVS_CTL, "start", "--system-id=random"], timeout=60)
    if not is_running():
        raise HarnessError("Open vSwitch did not start")


def vsctl(*args: str) -> str:
    return run(["ovs-vsctl", "--timeout=10", *args]).stdout


def ofctl(*args: str) -> str:
    return run(["ovs-ofctl", "-O", "OpenFlow13", *args]).stdout


@dataclass
class Bridge:
    """A userspace bridge controlled by one OpenFlow controller."""

    name: str
    dpid: int
    controller_port: int
    ports: dict[str, int] = field(default_factory=dict)

    def create(self) -> Bridge:
        ensure_running()
        vsctl("--may-exist", "add-br", self.name, "--",
              "set", "bridge", self.name, "datapath_type=netdev",
              f"other-config:datapath-id={self.dpid:016x}",
              "protocols=OpenFlow13", "fail-mode=secure", "--",
              "set-controller", self.name, f"tcp:127.0.0.1:{self.controller_port}")
        return self

    def add_port(self, ifname: str, ofport: int) -> None:
        vsctl("--may-exist", "add-port", self.name, ifname, "--",
              "set", "interface", ifname, f"ofport_request={ofport}")
        self.ports[ifname] = ofport

    def dump_flows(self) -> str:
        return ofctl("dump-flows", self.name)

    def flow_packets(self) -> dict[int, int]:
        """Packet count of each flow, by cookie (flows sharing a cookie are summed)."""
        counts: dict[int, int] = {}
        for line in self.dump_flows().splitlines():
            fields = dict(part.split("=", 1) for part in line.replace(",", " ").split()
                          if "=" in part and part.split("=", 1)[0] in ("cookie", "n_packets"))
            if "cookie" in fields and "n_packets" in fields:
                cookie = int(fields["cookie"], 16)
                counts[cookie] = counts.get(cookie, 0) + int(fields["n_packets"])
        return counts

    def destroy(self) -> None:
        run(["ovs-vsctl", "--timeout=10", "--if-exists", "del-br", self.name], check=False)

    def __enter__(self) -> Bridge:
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.destroy()
