"""Shared bits of the benchmark reports: machine description, tables, spreads."""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        ovs = subprocess.run(["ovs-vsctl", "--version"], capture_output=True,
                             text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        ovs = "no Open vSwitch"
    info: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
        "python": platform.python_version(), "platform": platform.platform(), "ovs": ovs,
        "loadavg": loadavg()}
    info["summary"] = (f"Measured {info['date']} on {info['nproc']} cores ({cpu}), "
                       f"Linux {info['kernel']}, Python {info['python']}, {ovs}.")
    return info


def loadavg() -> str:
    """1/5/15-minute load: anything else busy on the machine skews the figures."""
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def spread(values: list[float]) -> str:
    """min..max (and the IQR when there are enough samples)."""
    if not values:
        return "-"
    text = f"{min(values):.2f}..{max(values):.2f}"
    if len(values) >= 4:
        q1, _, q3 = statistics.quantiles(values, n=4)
        text += f" (IQR {q1:.2f}..{q3:.2f})"
    return text


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def save(result: dict[str, Any], json_path: Path | None, markdown_path: Path | None,
         render: Callable[[dict[str, Any]], str]) -> None:
    """Write a benchmark's results where asked: the JSON, and its Markdown section."""
    if json_path:
        json_path.write_text(json.dumps(result, indent=2) + "\n")
    if markdown_path:
        markdown_path.write_text(render(result))
