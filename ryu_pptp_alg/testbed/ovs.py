"""Open vSwitch with userspace (netdev) bridges: no kernel module needed.

Bridges are ``fail-mode=secure``: while no controller is connected the switch
keeps its flows and adds none of its own (a standalone bridge would fall back to
learning-switch behaviour). Their controller's ``max_backoff`` is 1 s (OVS
default: 8 s), so a controller started again is found within about a second.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from ryu_pptp_alg.testbed.proc import HarnessError, have, run, wait_for

OVS_CTL = "/usr/share/openvswitch/scripts/ovs-ctl"
VSWITCHD_PIDFILE = "/var/run/openvswitch/ovs-vswitchd.pid"
RMEM_DEFAULT = Path("/proc/sys/net/core/rmem_default")
# The receive buffer of each port's packet socket in vswitchd. OVS sets none, so a port
# gets net.core.rmem_default as it is added: 208 KiB, about 270 small frames, 5 ms of a
# 50,000/s flood. A flood on a port shared with a real peer then costs the peer's frames
# whenever vswitchd is off the CPU for 5 ms (2 busy cores in CI): the software switch's
# loss, not the controller's. 8 MiB holds about 160 ms, nearer a hardware port's buffer.
PORT_RX_BUFFER = 8 << 20


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


def vswitchd_pid() -> int | None:
    """The pid of the running ovs-vswitchd (from its pidfile), or None."""
    try:
        pid = int(Path(VSWITCHD_PIDFILE).read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def restart_vswitchd(keep_flows: bool = False, timeout: float = 60) -> float:
    """Restart ovs-vswitchd only (ovsdb-server, so every bridge and port record,
    stays); returns how long it took. Every bridge of the host goes down meanwhile.

    ``keep_flows=False`` stops and starts it: the userspace datapath and every
    OpenFlow flow are gone, ports come back from the database (same ofports; veth
    offload settings are untouched) and controllers must reinstall their flows.
    ``keep_flows=True`` is ``ovs-ctl restart``, which saves the flows with ovs-save
    and restores them under other_config:flow-restore-wait; but on a bridge with a
    controller (OVS 3.1 here) the restored flows are flushed again when vswitchd
    configures the controller once the wait ends (a bridge going from no controller to
    one drops its flows), so such bridges lose their flows either way. vswitchd runs
    afterwards, or HarnessError is raised after one more attempt to start it.
    """
    if not os.path.exists(OVS_CTL):
        raise HarnessError(f"{OVS_CTL} missing: install openvswitch-switch")
    began = time.monotonic()
    old = vswitchd_pid()
    try:
        if keep_flows:
            run([OVS_CTL, "--no-ovsdb-server", "restart"], timeout=timeout)
        else:
            run([OVS_CTL, "--no-ovsdb-server", "stop"], timeout=timeout)
            run([OVS_CTL, "--no-ovsdb-server", "start"], timeout=timeout)
        wait_for(lambda: (pid := vswitchd_pid()) is not None and pid != old and
                 run(["ovs-appctl", "-T", "2", "-t", "ovs-vswitchd", "version"],
                     check=False).returncode == 0, timeout, "ovs-vswitchd to come back")
    finally:
        if vswitchd_pid() is None:  # never leave the host without a switch
            run([OVS_CTL, "--no-ovsdb-server", "start"], timeout=timeout, check=False)
    if vswitchd_pid() is None:
        raise HarnessError("ovs-vswitchd did not start again")
    return time.monotonic() - began


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
    max_backoff_ms: int = 1000  # between attempts to reach a lost controller
    # More controllers of a high-availability group: the switch connects to each.
    more_controller_ports: tuple[int, ...] = ()

    def create(self) -> Bridge:
        ensure_running()
        ports = (self.controller_port, *self.more_controller_ports)
        controllers: list[str] = []
        for i, port in enumerate(ports):
            controllers += ["--", f"--id=@c{i}", "create", "controller",
                            f"target=\"tcp:127.0.0.1:{port}\"",
                            f"max_backoff={self.max_backoff_ms}"]
        vsctl("--may-exist", "add-br", self.name, "--",
              "set", "bridge", self.name, "datapath_type=netdev",
              f"other-config:datapath-id={self.dpid:016x}",
              "protocols=OpenFlow13", "fail-mode=secure", *controllers, "--",
              "set", "bridge", self.name,
              f"controller=[{','.join(f'@c{i}' for i in range(len(ports)))}]")
        return self

    def fail_mode(self) -> str:
        return vsctl("get-fail-mode", self.name).strip()

    def controller_connected(self) -> bool:
        """Whether the switch says its controller connection is up (ovsdb's view,
        refreshed by vswitchd about once a second at most)."""
        out = run(["ovs-vsctl", "--timeout=5", "get", "controller", self.name,
                   "is_connected"], check=False).stdout
        return out.strip() == "true"

    def wait_ports(self, timeout: float = 30) -> None:
        """Wait until every port we added has its ofport again (after a vswitchd
        restart) and re-apply ``tx off`` on the veth ends (vswitchd does not touch it,
        but a port that was re-created would have lost it)."""
        def ready() -> bool:
            for ifname, ofport in self.ports.items():
                out = run(["ovs-vsctl", "--timeout=5", "get", "interface", ifname, "ofport"],
                          check=False).stdout.strip()
                if out != str(ofport):
                    return False
            return True
        wait_for(ready, timeout, f"the ports of {self.name} to come back")
        for ifname in self.ports:
            run(["ethtool", "-K", ifname, "tx", "off"], check=False)

    def tx_checksum_offload(self) -> dict[str, bool]:
        """Whether TX checksum offload is on, per port (it must be off)."""
        result = {}
        for ifname in self.ports:
            out = run(["ethtool", "-k", ifname], check=False).stdout
            result[ifname] = "tx-checksumming: on" in out
        return result

    def add_port(self, ifname: str, ofport: int) -> None:
        # vswitchd opens the port's packet socket before ovs-vsctl returns (it waits for
        # the reconfiguration), so the raised default is in force for exactly that.
        before = RMEM_DEFAULT.read_text().strip()
        RMEM_DEFAULT.write_text(str(max(int(before), PORT_RX_BUFFER)))
        try:
            vsctl("--may-exist", "add-port", self.name, ifname, "--",
                  "set", "interface", ifname, f"ofport_request={ofport}")
        finally:
            RMEM_DEFAULT.write_text(before)
        self.ports[ifname] = ofport

    def socket_drops(self) -> dict[str, int]:
        """Frames the kernel dropped at vswitchd's packet socket of each port because
        its receive buffer was full (``ss``'s skmem ``d``): losses no port statistic
        shows."""
        pid = vswitchd_pid()
        out = run(["ss", "-0", "-m", "-p", "-n"], check=False).stdout
        drops: dict[str, int] = {}
        for line in out.splitlines():
            fields = line.split()
            if pid is None or f"pid={pid}," not in line or len(fields) < 5:
                continue
            ifname = fields[3].rpartition(":")[2]
            count = line.rpartition(",d")[2].partition(")")[0]
            if ifname in self.ports and count.isdigit():
                drops[ifname] = drops.get(ifname, 0) + int(count)
        return drops

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
