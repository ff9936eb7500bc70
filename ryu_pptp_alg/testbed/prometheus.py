"""A real Prometheus server (Debian's ``prometheus``) scraping the controller, for tests.

It runs as our own child process on a free localhost port with its own configuration
and data directory under ``workdir``, and is stopped (and its data left for a look) on
exit. ``query`` asks Prometheus's HTTP API, as a dashboard would.
"""

from __future__ import annotations

import json
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from ryu_pptp_alg.testbed.controller import free_port
from ryu_pptp_alg.testbed.proc import HarnessError, stop, wait_for


class PrometheusServer:
    def __init__(self, targets: list[str], workdir: Path, interval: float = 1.0,
                 metrics_path: str = "/metrics") -> None:
        self.targets = targets  # host:port of each controller's REST port
        self.workdir = workdir
        self.interval = interval
        self.metrics_path = metrics_path
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "prometheus.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> PrometheusServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        every = f"{round(self.interval * 1000)}ms"  # Prometheus takes no "1.0s"
        config = {"global": {"scrape_interval": every, "evaluation_interval": every},
                  "scrape_configs": [{"job_name": "ryu-pptp-alg",
                                      "metrics_path": self.metrics_path,
                                      "static_configs": [{"targets": self.targets}]}]}
        config_path = self.workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                ["prometheus", f"--config.file={config_path}",
                 f"--storage.tsdb.path={self.workdir / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}"],
                stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for(self._ready, 30, f"Prometheus on port {self.port}")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *_: Any) -> None:
        if self.process is not None:
            stop(self.process)

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise HarnessError(f"prometheus exited with {self.process.returncode}: "
                               f"{self.log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}",
                                    timeout=5) as response:
            body = json.load(response)
        if body.get("status") != "success":
            raise HarnessError(f"Prometheus {path}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's vector: [{"metric": {...}, "value": [t, "v"]}, ...]."""
        return self.api("query", query=expr)["result"]

    def targets_up(self) -> list[dict[str, Any]]:
        return [t for t in self.api("targets")["activeTargets"] if t["health"] == "up"]
