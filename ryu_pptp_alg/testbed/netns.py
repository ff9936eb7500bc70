"""Test hosts: network namespaces joined to an OVS bridge by veth pairs."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Sequence
from typing import Any

from ryu_pptp_alg.testbed.ovs import Bridge
from ryu_pptp_alg.testbed.proc import run


class Namespace:
    """One host. ``attach`` gives it an interface on a bridge port."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.links: list[str] = []  # root-namespace veth ends we created

    def create(self) -> Namespace:
        self.delete()
        run(["ip", "netns", "add", self.name])
        self.run("ip", "link", "set", "lo", "up")
        return self

    def cmd(self, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *args]

    def run(self, *args: str, check: bool = True,
            timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return run(self.cmd(*args), check=check, timeout=timeout)

    def popen(self, args: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        return subprocess.Popen(self.cmd(*args), **kwargs)

    def attach(self, bridge: Bridge, ofport: int, address: str, ifname: str = "eth0",
               gateway: str | None = None, mac: str | None = None) -> str:
        """A veth from this namespace to ``bridge`` port ``ofport``; returns the root end."""
        root_end = f"{self.name[:10]}p{ofport}"
        run(["ip", "link", "del", root_end], check=False)
        run(["ip", "link", "add", root_end, "type", "veth", "peer", "name", ifname,
             "netns", self.name])
        self.links.append(root_end)
        # The userspace datapath does not fill in checksums offloaded by veth.
        run(["ethtool", "-K", root_end, "tx", "off"], check=False)
        self.run("ethtool", "-K", ifname, "tx", "off", check=False)
        if mac:
            self.run("ip", "link", "set", ifname, "address", mac)
        run(["ip", "link", "set", root_end, "up"])
        self.run("ip", "addr", "add", address, "dev", ifname)
        self.run("ip", "link", "set", ifname, "up")
        if gateway:
            self.run("ip", "route", "add", "default", "via", gateway)
        bridge.add_port(root_end, ofport)
        return root_end

    def veth_to(self, peer: Namespace, ifname: str, peer_ifname: str,
                address: str | None = None, peer_address: str | None = None) -> None:
        """A veth pair from this namespace to ``peer`` (both ends up; optional addresses).

        Both ends live in namespaces, so deleting either namespace removes the pair.
        """
        self.run("ip", "link", "add", ifname, "type", "veth", "peer", "name", peer_ifname,
                 "netns", peer.name)
        for ns, dev, addr in ((self, ifname, address), (peer, peer_ifname, peer_address)):
            if addr:
                ns.run("ip", "addr", "add", addr, "dev", dev)
            ns.run("ip", "link", "set", dev, "up")

    def pids(self) -> list[int]:
        out = run(["ip", "netns", "pids", self.name], check=False).stdout
        return [int(pid) for pid in out.split()]

    def exists(self) -> bool:
        return self.name in run(["ip", "netns", "list"], check=False).stdout.split()

    def delete(self) -> None:
        """Kill what runs inside (only this namespace's pids), remove links and the netns."""
        if self.exists():
            for pid in self.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            run(["ip", "netns", "del", self.name], check=False)
        for link in self.links:
            run(["ip", "link", "del", link], check=False)
        self.links.clear()

    def __enter__(self) -> Namespace:
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.delete()


class AttachedNamespace(Namespace):
    """A name for an existing process's network namespace (a Mininet host, say).

    ``delete`` kills only what the harness tagged and removes the name; the
    namespace itself belongs to its process.
    """

    def __init__(self, name: str, pid: int) -> None:
        super().__init__(name)
        self.pid = pid

    def create(self) -> AttachedNamespace:
        run(["ip", "netns", "del", self.name], check=False)
        run(["ip", "netns", "attach", self.name, str(self.pid)])
        return self

    def delete(self) -> None:
        if self.exists():
            run(["ip", "netns", "del", self.name], check=False)
