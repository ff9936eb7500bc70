"""The ``ryu-pptp-alg`` controller as a child process, with its REST API."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from ryu_pptp_alg.testbed.proc import HarnessError, wait_for


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launcher_path() -> str:
    """The ``ryu-pptp-alg`` script installed beside this interpreter."""
    return str(Path(sys.executable).with_name("ryu-pptp-alg"))


class Controller:
    """Runs ryu-pptp-alg with a config dict; stops it (by our own pid) on exit."""

    def __init__(self, config: dict[str, Any], workdir: Path,
                 extra_args: tuple[str, ...] = (), command: tuple[str, ...] | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.config = config
        self.command = command or (launcher_path(),)
        self.env = env or {}
        self.workdir = workdir
        self.extra_args = extra_args
        self.of_port = free_port()
        self.rest_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "controller.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    def start(self) -> Controller:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config_path = self.workdir / "gateways.yaml"
        config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        args = [*self.command, "--pptp-config", str(config_path),
                "--ofp-tcp-listen-port", str(self.of_port),
                "--wsapi-host", "127.0.0.1", "--wsapi-port", str(self.rest_port),
                *self.extra_args]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env})
        wait_for(self._ready, 30, f"ryu-pptp-alg REST on port {self.rest_port}")
        return self

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise HarnessError(f"ryu-pptp-alg exited with {self.process.returncode}:\n"
                               f"{self.log()}")
        try:
            self.get("/pptp/gateways")
        except (OSError, urllib.error.URLError):
            return False
        return True

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=5) as response:
            return json.load(response)

    def gateway_connected(self, dpid: int) -> bool:
        return any(g["dpid"] == dpid and g["connected"]
                   for g in self.get("/pptp/gateways")["gateways"])

    def wait_connected(self, dpid: int, timeout: float = 30) -> None:
        wait_for(lambda: self.gateway_connected(dpid), timeout, f"dpid {dpid:#x} to connect")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def __enter__(self) -> Controller:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
