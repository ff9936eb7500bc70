"""Shared helpers for cross-checking the codecs against tshark (and scapy)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

TSHARK_TIMEOUT_S = 60

TsharkFields = Callable[[Sequence[bytes], Sequence[str]], list[dict[str, str]]]


def _tshark_binary() -> str:
    path = shutil.which("tshark")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("tshark is not on PATH (required when CI=true)")
        pytest.skip("tshark is not on PATH")
    return path


def _write_pcap(path: Path, frames: Sequence[bytes]) -> None:
    from scapy.utils import wrpcap

    # Raw Ethernet frames; linktype 1 (DLT_EN10MB).
    wrpcap(str(path), [bytes(f) for f in frames], linktype=1)


def tshark_fields_of(tshark: str, pcap: Path, fields: Sequence[str]) -> list[dict[str, str]]:
    """One dict per frame: field -> value ('' if absent; repeated values joined by ',')."""
    cmd = [tshark, "-n", "-r", str(pcap), "-T", "fields",
           "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,"]
    for field in fields:
        cmd += ["-e", field]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=TSHARK_TIMEOUT_S,
                            check=False)
    assert result.returncode == 0, f"tshark failed: {result.stderr}"
    rows = []
    for line in result.stdout.splitlines():
        values = line.split("\t")
        assert len(values) == len(fields), line
        rows.append(dict(zip(fields, values, strict=True)))
    return rows


@pytest.fixture(scope="session")
def tshark_fields(tmp_path_factory: pytest.TempPathFactory) -> TsharkFields:
    """Write frames (Ethernet bytes) to a pcap and dissect them with tshark."""
    binary = _tshark_binary()
    directory = tmp_path_factory.mktemp("tshark")
    counter = iter(range(1_000_000))

    def run(frames: Sequence[bytes], fields: Sequence[str]) -> list[dict[str, str]]:
        pcap = directory / f"capture{next(counter)}.pcap"
        _write_pcap(pcap, frames)
        rows = tshark_fields_of(binary, pcap, fields)
        assert len(rows) == len(frames), "tshark did not report every frame"
        return rows

    return run


def tcp_frame(payload: bytes, sport: int, dport: int = 1723) -> bytes:
    """Ethernet/IPv4/TCP frame; a distinct sport per frame keeps each its own stream."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw

    return bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2")
                 / TCP(sport=sport, dport=dport, flags="PA", seq=1000, ack=1)
                 / Raw(payload))


def gre_frame(gre_bytes: bytes) -> bytes:
    """Ethernet/IPv4 (protocol 47) frame carrying raw GRE bytes."""
    from scapy.layers.inet import IP
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw

    return bytes(Ether() / IP(src="10.0.0.2", dst="10.0.0.1", proto=47) / Raw(gre_bytes))
