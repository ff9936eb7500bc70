"""A local etcd cluster of child processes, for the etcd state store's tests.

Each member listens on its own free localhost client and peer port and keeps its
data in ``<workdir>/member<i>``. A member stopped (:meth:`EtcdCluster.stop_member`)
or killed (:meth:`EtcdCluster.kill_member`) can be started again on the same ports
and data directory (:meth:`EtcdCluster.start_member`): etcd then ignores the
initial-cluster flags and rejoins from its own log.

Members run with a 50 ms heartbeat and a 500 ms election timeout (etcd's defaults:
100 ms and 1 s), as etcd's tuning guide suggests for members on one fast network: a
killed leader is replaced in about 0.5-1 s, well inside a controller's 2 s lease, and
etcd's shortest lease becomes 1 s (1.5 election timeouts, rounded up).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import urllib.error
import urllib.request
from functools import partial
from pathlib import Path

from ryu_pptp_alg.testbed.controller import free_ports
from ryu_pptp_alg.testbed.proc import HarnessError, stop, wait_for

HEARTBEAT_MS = 50
ELECTION_TIMEOUT_MS = 500


class EtcdCluster:
    """``n`` etcd members; a context manager that starts them all and waits for quorum."""

    def __init__(self, workdir: Path, n: int = 3, binary: str = "etcd",
                 token: str = "ryu-pptp-alg-test") -> None:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self.workdir = Path(workdir)
        self.binary = shutil.which(binary) or binary
        self.token = token
        self.names = [f"member{i}" for i in range(n)]
        ports = free_ports(2 * n)
        self.client_ports, self.peer_ports = ports[:n], ports[n:]
        self.processes: list[subprocess.Popen[bytes] | None] = [None] * n
        self.starts = [0] * n  # runs per member: each logs to its own file

    @property
    def endpoints(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.client_ports]

    def _peer_url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.peer_ports[i]}"

    def log_path(self, i: int) -> Path:
        run = self.starts[i]
        return self.workdir / (f"{self.names[i]}.log" if run <= 1
                               else f"{self.names[i]}.{run}.log")

    def start_member(self, i: int) -> None:
        """Start member ``i`` (first start, or again on its old data directory)."""
        if self.running(i):
            raise HarnessError(f"etcd {self.names[i]} is already running")
        self.workdir.mkdir(parents=True, exist_ok=True)
        cluster = ",".join(f"{name}={self._peer_url(j)}" for j, name in enumerate(self.names))
        args = [self.binary, "--name", self.names[i],
                "--data-dir", str(self.workdir / self.names[i]),
                "--listen-client-urls", self.endpoints[i],
                "--advertise-client-urls", self.endpoints[i],
                "--listen-peer-urls", self._peer_url(i),
                "--initial-advertise-peer-urls", self._peer_url(i),
                "--initial-cluster", cluster,
                "--initial-cluster-token", self.token,
                "--initial-cluster-state", "new",
                "--heartbeat-interval", str(HEARTBEAT_MS),
                "--election-timeout", str(ELECTION_TIMEOUT_MS)]
        self.starts[i] += 1
        with open(self.log_path(i), "wb") as log:
            try:
                self.processes[i] = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
            except FileNotFoundError as err:
                raise HarnessError(f"{self.binary}: not installed") from err

    def stop_member(self, i: int, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        """Send ``sig`` to member ``i`` and wait for it to exit; its exit status."""
        process = self.processes[i]
        if process is None:
            raise HarnessError(f"etcd {self.names[i]} is not running")
        code, _ = stop(process, sig, timeout)
        self.processes[i] = None
        return code

    def kill_member(self, i: int) -> int:
        return self.stop_member(i, signal.SIGKILL)

    def running(self, i: int) -> bool:
        process = self.processes[i]
        return process is not None and process.poll() is None

    def healthy(self, i: int) -> bool:
        """Member ``i`` answers and sees a leader (etcd's /health needs quorum)."""
        process = self.processes[i]
        if process is not None and process.poll() is not None:
            raise HarnessError(f"etcd {self.names[i]} exited with {process.returncode}:\n"
                               f"{self.log_path(i).read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(f"{self.endpoints[i]}/health", timeout=1) as answer:
                return json.load(answer).get("health") == "true"
        except (OSError, urllib.error.URLError, ValueError):
            return False

    def wait_healthy(self, members: list[int] | None = None, timeout: float = 20) -> None:
        for i in range(len(self.names)) if members is None else members:
            wait_for(partial(self.healthy, i), timeout, f"etcd {self.names[i]} healthy",
                     interval=0.05)

    def start(self, timeout: float = 20) -> EtcdCluster:
        for i in range(len(self.names)):
            self.start_member(i)
        self.wait_healthy(timeout=timeout)
        return self

    def stop(self) -> None:
        for i, process in enumerate(self.processes):
            if process is not None:
                self.stop_member(i)

    def __enter__(self) -> EtcdCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["EtcdCluster"]
