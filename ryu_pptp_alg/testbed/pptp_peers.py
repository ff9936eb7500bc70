"""The real PPTP peers (pptp-linux client, PoPToP server) with the PPP stand-in.

Both run inside a :class:`Namespace` under the LD_PRELOAD shim (``preload.c``),
which sends their syslog to a private :class:`SyslogListener` and, for the
client, can force the call ID and the TCP source port.

- :class:`PptpClient` runs ``pptp SERVER --nolaunchpppd --nohostroute --localbind IP``
  on the master side of a pty and the stand-in on the slave side. Its call
  manager socket directory (``/var/run/pptp``, shared by all namespaces) is
  bind-mounted from the client's workdir inside the mount namespace that
  ``ip netns exec`` creates, so clients never share call managers.
- :class:`PptpServer` runs ``pptpd --fg`` with ``ppp`` set to a wrapper that
  execs the stand-in; each call writes ``<status_dir>/<client-ip>-<pid>.json``.

Processes are stopped by our own pids and by pids in the namespace whose
environment carries this object's tag (``PPTP_TESTBED_TAG``), never by name.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import shlex
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from ryu_pptp_alg.testbed import ppp_standin, preload
from ryu_pptp_alg.testbed.netns import Namespace
from ryu_pptp_alg.testbed.proc import HarnessError, wait_for
from ryu_pptp_alg.testbed.syslog import SyslogListener

TAG_ENV = "PPTP_TESTBED_TAG"
PPTP_RUN_DIR = Path("/var/run/pptp")


def tagged_pids(ns: Namespace, tag: str) -> list[int]:
    """Pids inside ``ns`` whose environment has ``PPTP_TESTBED_TAG=tag``."""
    marker = f"{TAG_ENV}={tag}".encode()
    found = []
    for pid in ns.pids():
        with contextlib.suppress(OSError):
            if marker in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                found.append(pid)
    return found


def kill_pids(pids: list[int], grace: float = 2.0) -> None:
    """SIGTERM, then SIGKILL what is left after ``grace`` seconds."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [pid for pid in alive if _alive(pid)]
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        # Reap if it is our child; a zombie counts as dead.
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return False
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return False


def _stop_popen(process: subprocess.Popen[Any] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(3)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(3)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class PptpServer:
    """PoPToP in ``ns`` listening on ``listen_ip``; one stand-in per call."""

    def __init__(self, ns: Namespace, listen_ip: str, workdir: Path,
                 local_ip: str = "10.255.0.1", remote_ips: str = "10.255.0.100-199",
                 echo_interval: float = 0.5, debug: bool = True) -> None:
        self.ns = ns
        self.listen_ip = listen_ip
        self.workdir = Path(workdir)
        self.local_ip = local_ip
        self.remote_ips = remote_ips
        self.echo_interval = echo_interval
        self.debug = debug
        self.tag = f"srv-{uuid.uuid4().hex[:12]}"
        self.status_dir = self.workdir / "calls"
        self.conf_path = self.workdir / "pptpd.conf"
        self.pid_path = self.workdir / "pptpd.pid"
        self.stderr_path = self.workdir / "pptpd.stderr"
        self.syslog = SyslogListener(log_file=self.workdir / "syslog.txt")
        self.process: subprocess.Popen[bytes] | None = None

    def write_config(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.status_dir.mkdir(exist_ok=True)
        wrapper = ppp_standin.write_wrapper(self.workdir / "ppp-standin.sh", self.status_dir,
                                            self.echo_interval)
        options = self.workdir / "ppp-options"
        options.write_text("# read by nobody: the PPP stand-in ignores pppd options\n")
        lines = [f"ppp {wrapper}", f"option {options}", f"localip {self.local_ip}",
                 f"remoteip {self.remote_ips}", f"listen {self.listen_ip}",
                 "connections 100"]
        if self.debug:
            lines.append("debug")
        self.conf_path.write_text("\n".join(lines) + "\n")

    def start(self) -> PptpServer:
        self.write_config()
        self.syslog.start()
        assert self.syslog.path is not None
        env = {**os.environ, TAG_ENV: self.tag,
               **preload.environment(syslog_socket=self.syslog.path)}
        with open(self.stderr_path, "wb") as err:
            self.process = self.ns.popen(
                ["pptpd", "--fg", "-c", str(self.conf_path), "-p", str(self.pid_path)],
                stdin=subprocess.DEVNULL, stdout=err, stderr=subprocess.STDOUT, env=env)
        try:
            wait_for(self._listening, 10, f"pptpd listening on {self.listen_ip}:1723")
        except HarnessError:
            self.stop()
            raise
        return self

    def _listening(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise HarnessError(f"pptpd exited with {self.process.returncode}: "
                               f"{self.stderr_path.read_text(errors='replace')}\n{self.log()}")
        out = self.ns.run("ss", "-Hltn", "sport = :1723", check=False).stdout
        return f"{self.listen_ip}:1723" in out or "*:1723" in out

    def calls(self) -> list[dict[str, Any]]:
        """The stand-ins' status (one dict per call, oldest first)."""
        found = [_read_json(p) for p in sorted(self.status_dir.glob("*.json"))]
        return sorted((c for c in found if c), key=lambda c: c["started"])

    def log(self) -> list[str]:
        """Syslog lines of pptpd and pptpctrl, as ``program[pid]: message``."""
        return self.syslog.messages("pptpd", "pptpctrl")

    def stop(self) -> None:
        _stop_popen(self.process)
        self.process = None
        if self.ns.exists():
            kill_pids(tagged_pids(self.ns, self.tag))
        time.sleep(0.1)  # let the stand-ins' last status writes and log lines land
        self.syslog.stop()

    def __enter__(self) -> PptpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class PptpClient:
    """pptp-linux in ``ns`` calling ``server_ip`` from ``local_ip``, PPP by the stand-in.

    ``call_id`` and ``source_port`` force the call ID the client chooses and the
    TCP source port of its control connection (through the LD_PRELOAD shim).
    """

    def __init__(self, ns: Namespace, server_ip: str, local_ip: str, workdir: Path,
                 call_id: int | None = None, source_port: int | None = None,
                 echo_interval: float = 0.5, loglevel: int = 1) -> None:
        self.ns = ns
        self.server_ip = server_ip
        self.local_ip = local_ip
        self.workdir = Path(workdir)
        self.call_id = call_id
        self.source_port = source_port
        self.echo_interval = echo_interval
        self.loglevel = loglevel
        self.tag = f"cli-{uuid.uuid4().hex[:12]}"
        self.status_path = self.workdir / "standin.json"
        self.run_dir = self.workdir / "run-pptp"
        self.stderr_path = self.workdir / "pptp.stderr"
        self.syslog = SyslogListener(log_file=self.workdir / "syslog.txt")
        self.pptp: subprocess.Popen[bytes] | None = None
        self.standin: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        pptp = ["pptp", self.server_ip, "--nolaunchpppd", "--nohostroute",
                "--localbind", self.local_ip, "--loglevel", str(self.loglevel)]
        # A private /var/run/pptp (call manager sockets) in ip-netns-exec's mount namespace.
        script = (f"mount --bind {shlex.quote(str(self.run_dir))} {PPTP_RUN_DIR} && "
                  f"exec {shlex.join(pptp)}")
        return ["sh", "-c", script]

    def start(self) -> PptpClient:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(exist_ok=True)
        PPTP_RUN_DIR.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.status_path.unlink()
        self.syslog.start()
        assert self.syslog.path is not None
        master, slave = pty.openpty()
        try:
            self.standin = subprocess.Popen(
                [sys.executable, "-m", "ryu_pptp_alg.testbed.ppp_standin", "--role", "client",
                 "--status", str(self.status_path), "--echo-interval", str(self.echo_interval)],
                stdin=slave, stdout=slave, stderr=subprocess.DEVNULL,
                env={**os.environ, TAG_ENV: self.tag}, start_new_session=True)
            env = {**os.environ, TAG_ENV: self.tag,
                   **preload.environment(self.call_id, self.source_port, self.syslog.path)}
            with open(self.stderr_path, "wb") as err:
                self.pptp = self.ns.popen(self.command(), stdin=master, stdout=master,
                                          stderr=err, env=env, start_new_session=True)
        finally:
            os.close(master)
            os.close(slave)
        return self

    def stats(self) -> dict[str, Any]:
        """The stand-in's status: ``state``, ``counters`` (see ppp_standin.Counters), ..."""
        return _read_json(self.status_path) or {}

    def counters(self) -> dict[str, int]:
        return self.stats().get("counters", {})

    def ppp_up(self) -> bool:
        return self.counters().get("lcp_echo_replies_received", 0) > 0

    def wait_ppp_up(self, timeout: float = 10) -> dict[str, Any]:
        """Wait for LCP echo replies to come back; returns the stand-in status."""
        try:
            wait_for(self.ppp_up, timeout, f"PPP over PPTP to {self.server_ip}")
        except HarnessError as err:
            code = self.pptp.poll() if self.pptp is not None else None
            stderr = self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() \
                else ""
            raise HarnessError(f"{err}\npptp exit code: {code}, stderr: {stderr.strip()}\n"
                               f"stand-in: {self.stats()}\nlog:\n"
                               + "\n".join(self.log())) from None
        return self.stats()

    def log(self) -> list[str]:
        """Syslog lines of pptp (main process and call manager)."""
        return self.syslog.messages()

    def stop(self) -> None:
        _stop_popen(self.pptp)
        self.pptp = None
        if self.ns.exists():
            kill_pids(tagged_pids(self.ns, self.tag))
        _stop_popen(self.standin)
        self.standin = None
        self.syslog.stop()

    def __enter__(self) -> PptpClient:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
