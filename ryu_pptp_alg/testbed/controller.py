"""The ``ryu-pptp-alg`` controller as a child process, with its REST API.

It can be killed (:meth:`Controller.kill`, any signal, our own child only) and
started again (:meth:`Controller.restart`) on the same OpenFlow and REST ports
with the same configuration, so a switch that lost it reconnects by itself.
Each run logs to its own file: ``controller.log``, then ``controller.2.log``, ...
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from ryu_pptp_alg.testbed.proc import HarnessError, stop, wait_for


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(n: int) -> list[int]:
    """``n`` distinct free localhost ports. Each socket stays bound until all are taken:
    the kernel may hand a port just closed out again at once (CI once gave a controller
    its OpenFlow and REST ports alike, and the switch said hello to the web server)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def state_section_refused(config: dict[str, Any]) -> str:
    """Why the controller's configuration refuses ``config`` (a dict with a ``state``
    section), or "" if it accepts it or this cannot be told without starting it."""
    try:
        from ryu_pptp_alg.config import ConfigError, config_from_dict
    except ImportError:
        return ""
    try:
        config_from_dict(config)
    except ConfigError as err:
        return str(err)
    except Exception:  # a loader that fails otherwise: let the controller's start say
        return ""
    return ""


def launcher_path() -> str:
    """The ``ryu-pptp-alg`` script installed beside this interpreter."""
    return str(Path(sys.executable).with_name("ryu-pptp-alg"))


class Controller:
    """Runs ryu-pptp-alg with a config dict; stops it (by our own pid) on exit.

    The config dict is written to YAML as it is, so a test adds any section the
    controller knows (``"state": {"path": ...}`` say) to the dict. One exception,
    ``private_state``: a config without a ``state`` section gets
    ``{"path": <workdir>/state.msgpack}`` if the controller's configuration knows that
    section, so no run reads or writes the shared default (/var/lib/ryu-pptp-alg) and
    no test inherits calls from another.
    """

    def __init__(self, config: dict[str, Any], workdir: Path,
                 extra_args: tuple[str, ...] = (), command: tuple[str, ...] | None = None,
                 env: dict[str, str] | None = None, private_state: bool = True) -> None:
        self.config = config
        self.private_state = private_state
        self.command = command or (launcher_path(),)
        self.env = env or {}
        self.workdir = workdir
        self.extra_args = extra_args
        self.of_port, self.rest_port = free_ports(2)
        self.process: subprocess.Popen[bytes] | None = None
        self.runs = 0  # starts so far; run n logs to log_paths[n - 1]
        self.log_paths: list[Path] = []
        self.log_path = workdir / "controller.log"
        self.returncodes: list[int] = []  # of the runs that ended, in order

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 30) -> Controller:
        """Start a run (the same ports and config as any run before); wait for REST."""
        if self.running():
            raise HarnessError("ryu-pptp-alg is already running")
        self.workdir.mkdir(parents=True, exist_ok=True)
        config_path = self.workdir / "gateways.yaml"
        config_path.write_text(yaml.safe_dump(self.written_config(), sort_keys=False))
        args = [*self.command, "--pptp-config", str(config_path),
                "--ofp-tcp-listen-port", str(self.of_port),
                "--wsapi-host", "127.0.0.1", "--wsapi-port", str(self.rest_port),
                *self.extra_args]
        self.runs += 1
        self.log_path = self.workdir / ("controller.log" if self.runs == 1
                                        else f"controller.{self.runs}.log")
        self.log_paths.append(self.log_path)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env})
        wait_for(self._ready, timeout, f"ryu-pptp-alg REST on port {self.rest_port}")
        return self

    def written_config(self) -> dict[str, Any]:
        """The config as the controller gets it (see ``private_state``)."""
        if not self.private_state or "state" in self.config:
            return self.config
        private = {**self.config, "state": {"path": str(self.workdir / "state.msgpack")}}
        return self.config if state_section_refused(private) else private

    def restart(self, timeout: float = 30) -> Controller:
        """Start again after :meth:`kill` or :meth:`stop` (stops a running one first)."""
        if self.running():
            self.stop()
        return self.start(timeout)

    def kill(self, sig: int = signal.SIGKILL, timeout: float = 10) -> int:
        """Send ``sig`` to our child and wait for it to exit; returns its exit status
        (negative: the signal that ended it). If it outlives ``timeout`` it is
        SIGKILLed and HarnessError raised: a controller must obey SIGTERM."""
        if self.process is None:
            raise HarnessError("ryu-pptp-alg is not running")
        code, killed = stop(self.process, sig, timeout)
        self._ended(code)
        if killed:
            raise HarnessError(f"ryu-pptp-alg ignored {signal.Signals(sig).name} for "
                               f"{timeout:.0f}s (SIGKILLed)")
        return code

    def _ended(self, code: int) -> None:
        self.returncodes.append(code)
        self.process = None

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise HarnessError(f"ryu-pptp-alg exited with {self.process.returncode}:\n"
                               f"{self.log()}")
        try:
            self.get("/pptp/gateways")
        except (OSError, urllib.error.URLError):
            return False
        return True

    def get(self, path: str, timeout: float = 5) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
            return json.load(response)

    def gateway_connected(self, dpid: int) -> bool:
        return any(g["dpid"] == dpid and g["connected"]
                   for g in self.get("/pptp/gateways")["gateways"])

    def wait_connected(self, dpid: int, timeout: float = 30) -> float:
        """Wait for the switch ``dpid``; returns the monotonic time it was seen connected."""
        wait_for(lambda: self.gateway_connected(dpid), timeout, f"dpid {dpid:#x} to connect",
                 interval=0.05)
        return time.monotonic()

    def log(self) -> str:
        """This run's log (see :meth:`all_logs` for every run's)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def all_logs(self) -> str:
        return "".join(f"==== {path.name}\n{path.read_text(errors='replace')}"
                       for path in self.log_paths if path.exists())

    def stop(self) -> None:
        if self.process is None:
            return
        process = self.process
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        self._ended(process.returncode)

    def __enter__(self) -> Controller:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
